"""Scoped identity and exact scope matching: message ids per scope, validated scope values,
exact search and listing, require_scope, and the record-store migration that brought them."""

from __future__ import annotations

import json
import sqlite3

import pytest
from lightmem_hookspecs import Scope

from lightmem_core import LightMemory
from lightmem_core.errors import EmptyScopeError, InputError, ScopeRequiredError
from lightmem_core.messages import message_id
from lightmem_core.store import SCHEMA_VERSION, SQLiteRecordStore
from lightmem_core.testing.reference import reference_config


def _msg(content: str, **extra):
    return {"role": "user", "content": content, **extra}


def test_same_message_id_in_two_scopes_is_two_messages(make_memory):
    mem = make_memory()
    first = mem.add([_msg("I like green tea", id="msg-1")], user_id="alice")
    second = mem.add([_msg("I am allergic to penicillin", id="msg-1")], user_id="bob")
    assert first.messages_added == 1 and second.messages_added == 1
    assert [e.memory for e in mem.get_all(user_id="bob")] == ["I am allergic to penicillin"]
    assert [e.memory for e in mem.get_all(user_id="alice")] == ["I like green tea"]
    again = mem.add([_msg("I am allergic to penicillin", id="msg-1")], user_id="bob")
    assert again.messages_added == 0  # re-sending within a scope stays idempotent


@pytest.mark.parametrize(
    ("id_a", "scope_a", "id_b", "scope_b"),
    [
        (7, {"user_id": "u1"}, "7", {"user_id": "u2"}),
        ("m", {}, "m", {"user_id": "x"}),
        ("m", {"agent_id": "a"}, "m", {"run_id": "a"}),
        (None, {"user_id": "a\x1fb"}, None, {"user_id": "a", "agent_id": "b"}),
    ],
)
def test_ids_never_collide_across_scopes(make_memory, id_a, scope_a, id_b, scope_b):
    mem = make_memory()
    msg_a = _msg("same words", **({"id": id_a} if id_a is not None else {}))
    msg_b = _msg("same words", **({"id": id_b} if id_b is not None else {}))
    assert mem.add([msg_a], **scope_a).messages_added == 1
    assert mem.add([msg_b], **scope_b).messages_added == 1
    assert len(mem.get_all()) == 2


def test_generated_ids_cannot_be_imitated_by_separators():
    a = Scope("a\x1fb", None, None)
    b = Scope("a", "b", None)
    assert message_id(a, "user", "x", None, 0) != message_id(b, "user", "x", None, 0)
    c = Scope('a", "b', None, None)
    assert message_id(c, "user", "x", None, 0) != message_id(b, "user", "x", None, 0)


@pytest.mark.parametrize("key", ["user_id", "agent_id", "run_id"])
def test_an_empty_scope_id_is_refused_everywhere(make_memory, key):
    mem = make_memory()
    mem.add([_msg("blue is my colour", id="m")], user_id="alice")
    with pytest.raises(EmptyScopeError, match=key):
        mem.add([_msg("red is my colour", id="n")], **{key: ""})
    for call in (
        lambda: mem.search("colour", **{key: ""}),
        lambda: mem.search("colour", filters={key: ""}),
        lambda: mem.retrieve("colour", **{key: ""}),
        lambda: mem.get_all(**{key: ""}),
        lambda: mem.flush(**{key: ""}),
    ):
        with pytest.raises(EmptyScopeError, match=key):
            call()
    assert [m.message.content for m in mem.store.journal()] == ["blue is my colour"]


@pytest.mark.parametrize("bad", [123, 1.5, b"alice", ["alice"], "al\udcffice", True])
def test_scope_values_must_be_strings(make_memory, bad):
    mem = make_memory()
    with pytest.raises(InputError, match="user_id"):
        mem.add([_msg("hello there")], user_id=bad)
    with pytest.raises(InputError, match="user_id"):
        mem.search("hello", user_id=bad)
    with pytest.raises(InputError, match="user_id"):
        mem.get_all(user_id=bad)
    assert mem.store.journal() == []


def test_duplicate_ids_in_one_call_are_refused(make_memory):
    mem = make_memory()
    with pytest.raises(InputError, match=r"messages\[1\]\.id"):
        mem.add([_msg("one", id="x"), _msg("two", id="x")], user_id="u")
    assert mem.store.journal() == []


def test_search_and_get_all_match_scope_exactly(make_memory):
    mem = make_memory()
    mem.add([_msg("the password hint is a cat")], user_id="alice")
    mem.add([_msg("the password hint is a dog")], user_id="alice", run_id="r1")
    mem.add([_msg("the password hint is a cow")], agent_id="alice")
    mem.add([_msg("the password hint is a bee")])

    def found(**scope):
        return sorted(h.entry.memory.split()[-1] for h in mem.search("password hint", **scope))

    assert found(user_id="alice") == ["cat"]
    assert found(user_id="alice", run_id="r1") == ["dog"]
    assert found(agent_id="alice") == ["cow"]
    assert found(filters={"user_id": "alice"}) == ["cat"]
    assert found() == ["bee", "cat", "cow", "dog"]  # no scope named: every scope
    assert [e.memory.split()[-1] for e in mem.get_all(user_id="alice")] == ["cat"]
    with pytest.raises(InputError, match="user_id"):
        mem.search("x", user_id="alice", filters={"user_id": "bob"})


def test_exact_scope_still_fills_the_limit_when_other_scopes_crowd_the_index(make_memory):
    mem = make_memory()
    mem.add([_msg(f"the parrot number {i} sings") for i in range(80)], user_id="u", run_id="r")
    mem.add([_msg("the parrot of the user sings")], user_id="u")
    hits = mem.search("parrot sings", limit=1, user_id="u")
    assert [h.entry.memory for h in hits] == ["the parrot of the user sings"]


def test_require_scope(make_memory):
    mem = make_memory(require_scope=True)
    with pytest.raises(ScopeRequiredError):
        mem.search("anything")
    with pytest.raises(ScopeRequiredError):
        mem.get_all()
    with pytest.raises(ScopeRequiredError):
        mem.add([_msg("unscoped")])
    mem.add([_msg("scoped fact")], user_id="u")
    assert [h.entry.memory for h in mem.search("scoped fact", user_id="u")] == ["scoped fact"]


def _v1_store(path):
    """A record store as schema version 1 wrote it (global message ids, "" scope values)."""
    db = sqlite3.connect(path)
    db.executescript(
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('schema_version', '1');
        CREATE TABLE messages (
            seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, role TEXT NOT NULL,
            content TEXT NOT NULL, original_content TEXT NOT NULL, time_stamp TEXT,
            speaker_id TEXT, speaker_name TEXT, user_id TEXT, agent_id TEXT, run_id TEXT,
            metadata TEXT NOT NULL DEFAULT '{}', state TEXT NOT NULL DEFAULT 'sensory',
            topic_id INTEGER, batch_id TEXT, created_at TEXT NOT NULL);
        CREATE TABLE batches (id TEXT PRIMARY KEY, state TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL);
        CREATE TABLE entries (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
            memory TEXT NOT NULL, original_memory TEXT, time_stamp TEXT, speaker_id TEXT,
            speaker_name TEXT, topic_id INTEGER, user_id TEXT, agent_id TEXT, run_id TEXT,
            category TEXT, keywords TEXT NOT NULL DEFAULT '[]',
            entities TEXT NOT NULL DEFAULT '[]', topic_summary TEXT, importance REAL,
            status TEXT NOT NULL DEFAULT 'active', replaced_by TEXT,
            metadata TEXT NOT NULL DEFAULT '{}', batch_id TEXT,
            indexed INTEGER NOT NULL DEFAULT 0, revision INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
        INSERT INTO messages (id, role, content, original_content, user_id, agent_id, state,
            created_at) VALUES ('msg-1', 'user', 'I like tea', 'I like tea', 'alice', '',
            'sensory', '2024-01-01T00:00:00');
        INSERT INTO entries (id, memory, user_id, agent_id, created_at, updated_at)
            VALUES ('e1', 'old fact', '', 'a', '2024-01-01', '2024-01-01');
        """
    )
    db.commit()
    db.close()


def test_schema_1_store_is_migrated_in_place(tmp_path):
    _v1_store(tmp_path / "history.db")
    store = SQLiteRecordStore(tmp_path / "history.db")
    assert store.get_meta("schema_version") == str(SCHEMA_VERSION)
    rows = store.journal()
    assert [(r.message.id, r.message.scope) for r in rows] == [("msg-1", Scope("alice"))]
    assert [e.scope for e in store.entries()] == [Scope(None, "a", None)]
    store.close()


def test_migrated_memory_dir_keeps_working(tmp_path, ref_host):
    _v1_store(tmp_path / "history.db")
    with LightMemory(reference_config(tmp_path), host=ref_host) as mem:
        assert mem.add([_msg("I like tea", id="msg-1")], user_id="alice").messages_added == 0
        assert mem.add([_msg("bob's tea", id="msg-1")], user_id="bob").messages_added == 1
        mem.flush(user_id="alice")
        memories = {e.memory for e in mem.get_all(include_inactive=True)}
        assert memories == {"I like tea", "bob's tea", "old fact"}
        assert json.loads(json.dumps(mem.stats()["messages"])) == {"extracted": 2}


def test_update_calls_never_mix_scopes(tmp_path, llm):
    import re

    import lightmem_core.builtin as builtin
    from lightmem_core.eval.economy import scripted_responder
    from lightmem_core.testing import fresh_host
    from lightmem_core.testing.reference import ReferencePlugin

    shown: list[set[str]] = []

    def responder(body):
        schema = (body.get("response_format") or {}).get("json_schema", {}).get("schema", {})
        if schema.get("title") != "lightmem_extraction":
            text = "\n".join(m["content"] for m in body["messages"])
            shown.append(set(re.findall(r"tenant-(\w+)", text)))
        return scripted_responder(body)

    llm.responder = responder
    config = reference_config(
        tmp_path / "m", background_retry=False, memory_manager={"model_name": "scripted"}
    )
    host = fresh_host(builtin, ReferencePlugin(memory_manager=llm))
    with LightMemory(config, host=host) as mem:
        for tenant, scope in (("a", {"user_id": "a"}), ("b", {"agent_id": "a"}), ("c", {})):
            mem.add([_msg(f"tenant-{tenant} my car is red")], **scope)
            mem.add([_msg(f"tenant-{tenant} my car is blue now")], **scope)
        mem.construct_update_queue_all_entries()
        mem.offline_update_all_entries(score_threshold=0.0)
    assert shown and all(len(tenants) == 1 for tenants in shown), shown


def test_a_bare_flush_extracts_what_every_scope_buffers(make_memory):
    mem = make_memory()
    mem.add_memory(
        [{"role": "user", "content": "I adopted a collie named Biscuit"}], user_id="maya"
    )
    mem.add_memory([{"role": "user", "content": "I play the cello on Sundays"}], run_id="r1")
    mem.add_memory([{"role": "user", "content": "Nobody's message about tea"}])
    assert mem.get_all() == []  # still buffered
    result = mem.flush()
    assert result.batches_extracted == 3 and len(result.entries_added) == 3
    hits = mem.search("what is the collie called?", user_id="maya")
    assert [h.entry.memory for h in hits] == ["I adopted a collie named Biscuit"]
    assert [e.memory for e in mem.get_all(run_id="r1")] == ["I play the cello on Sundays"]
    assert mem.flush().entries_added == ()  # nothing left anywhere


def test_a_flush_that_names_a_scope_leaves_the_others_buffered(make_memory):
    mem = make_memory()
    mem.add_memory(
        [{"role": "user", "content": "I adopted a collie named Biscuit"}], user_id="maya"
    )
    mem.add_memory([{"role": "user", "content": "I play the cello on Sundays"}], user_id="li")
    assert len(mem.flush(user_id="maya").entries_added) == 1
    assert mem.get_all(user_id="li") == []
