"""Expiring memories: expires_at on messages, a default memory_ttl, purged by the update pass."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from lightmem_core.errors import ConfigError, InputError


def _msg(text, **extra):
    return {"role": "user", "content": text, **extra}


def test_an_expired_memory_is_not_returned_and_the_update_pass_retires_it(make_memory):
    mem = make_memory()
    soon = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)).isoformat()
    later = time.time() + 3600
    mem.add([_msg("the gate code is 4412 this week", expires_at=soon)], user_id="a")
    mem.add([_msg("the gate code used to be 1234", expires_at=later)], user_id="a")
    mem.add([_msg("my gate is painted green")], user_id="a")
    assert len(mem.search("gate code", user_id="a")) == 3
    short = next(e for e in mem.get_all(user_id="a") if "4412" in e.memory)
    assert short.metadata["expires_at"] == soon
    time.sleep(1.2)
    texts = [h.entry.memory for h in mem.search("gate code", user_id="a")]
    assert "the gate code is 4412 this week" not in texts and len(texts) == 2
    assert mem.get(short.id) is None
    assert short.id not in [e.id for e in mem.get_all(user_id="a")]
    # Still in the store until the pass runs; the pass retires it with a history record.
    assert short.id in [e.id for e in mem.get_all(user_id="a", include_inactive=True)]
    mem.construct_update_queue_all_entries()
    (row,) = [h for h in mem.history(short.id) if h["action"] == "delete"]
    assert row["reason"] == f"expired at {soon}"
    retired = next(e for e in mem.get_all(user_id="a", include_inactive=True) if e.id == short.id)
    assert retired.status == "deleted"
    assert len(mem.get_all(user_id="a")) == 2


def test_the_default_ttl_applies_when_messages_carry_none(make_memory):
    mem = make_memory(memory_ttl=1.0)
    mem.add([_msg("a passing thought")], user_id="a")
    mem.add([_msg("a lasting fact", expires_at="2999-01-01T00:00:00+00:00")], user_id="a")
    assert len(mem.get_all(user_id="a")) == 2
    time.sleep(1.2)
    assert [e.memory for e in mem.get_all(user_id="a")] == ["a lasting fact"]


def test_a_bad_expiry_is_refused_before_anything_is_written(make_memory):
    mem = make_memory()
    with pytest.raises(InputError, match=r"messages\[1\]\.expires_at"):
        mem.add([_msg("fine"), _msg("not fine", expires_at="the day after never")], user_id="a")
    assert mem.store.journal() == []
    with pytest.raises(ConfigError, match="memory_ttl"):
        make_memory(memory_ttl=0)
