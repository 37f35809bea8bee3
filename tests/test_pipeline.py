"""The ingestion pipeline: journal, buffers, flush semantics, provenance, idempotence."""

from __future__ import annotations

import datetime as dt

import pytest

from lightmem_core import InputError

DOG = [
    {"role": "user", "content": "My dog is called Biscuit", "time_stamp": "2024-03-02T09:15:00"},
    {"role": "assistant", "content": "What a lovely name", "time_stamp": "2024-03-02T09:16:00"},
    {
        "role": "user",
        "content": "I work as a data engineer in Lisbon",
        "time_stamp": "2024/03/09 (Sat) 19:40",
    },
]


def test_force_flush_turns_user_messages_into_entries(make_memory):
    mem = make_memory()
    result = mem.add_memory(DOG, force_segment=True, force_extract=True)
    assert result.messages_added == 3
    entries = mem.get_all()
    # messages_use defaults to user_only: the assistant turn is not a memory
    assert sorted(e.memory for e in entries) == [
        "I work as a data engineer in Lisbon",
        "My dog is called Biscuit",
    ]
    dog = next(e for e in entries if "Biscuit" in e.memory)
    assert dog.time_stamp == dt.datetime(2024, 3, 2, 9, 15)
    assert dog.weekday == "Sat"
    assert len(dog.source_message_ids) == 1
    assert mem.store.messages_by_id(dog.source_message_ids)[dog.source_message_ids[0]].content == (
        "My dog is called Biscuit"
    )


def test_resending_the_same_messages_adds_nothing(make_memory):
    mem = make_memory()
    mem.add_memory(DOG, force_segment=True, force_extract=True)
    again = mem.add_memory(DOG, force_segment=True, force_extract=True)
    assert again.messages_added == 0
    assert len(mem.get_all()) == 2


def test_messages_wait_in_the_buffers_until_thresholds(make_memory):
    mem = make_memory(sensory_buffer_tokens=1000, short_term_buffer_tokens=1000)
    mem.add_memory(DOG)
    assert mem.get_all() == []
    assert mem.store.stats()["messages"] == {"sensory": 3}
    mem.add_memory([], force_segment=True)
    assert mem.store.stats()["messages"] == {"short_term": 3}
    assert mem.get_all() == []
    mem.add_memory([], force_extract=True)
    assert len(mem.get_all()) == 2


def test_small_thresholds_flush_without_force(make_memory):
    mem = make_memory(sensory_buffer_tokens=5, short_term_buffer_tokens=5)
    mem.add_memory(DOG[:1])
    assert [e.memory for e in mem.get_all()] == ["My dog is called Biscuit"]


def test_retrieve_returns_original_format(make_memory):
    mem = make_memory()
    mem.add_memory(DOG, force_segment=True, force_extract=True)
    out = mem.retrieve("what is the dog called", limit=1)
    assert out == ["2024-03-02 09:15 Sat My dog is called Biscuit"]


def test_search_hits_carry_per_signal_scores(make_memory):
    mem = make_memory()
    mem.add_memory(DOG, force_segment=True, force_extract=True)
    hits = mem.search("dog Biscuit", limit=2)
    assert hits[0].entry.memory == "My dog is called Biscuit"
    assert set(hits[0].scores) == {"embedding", "context"}
    # without an LLM the default reranker chain is newer_first: its rank is recorded too
    assert hits[0].ranks == {"embedding": 1, "context": 1, "newer_first": 1}


def test_scopes_never_leak(make_memory):
    mem = make_memory()
    mem.add_memory(DOG[:1], force_segment=True, force_extract=True, user_id="alice")
    mem.add_memory(
        [{"role": "user", "content": "My dog is called Rex"}],
        force_segment=True,
        force_extract=True,
        user_id="bob",
    )
    alice = mem.search("dog", limit=5, user_id="alice")
    assert [h.entry.memory for h in alice] == ["My dog is called Biscuit"]
    assert {h.entry.scope.user_id for h in mem.search("dog", limit=5, user_id="bob")} == {"bob"}


def test_time_filters(make_memory):
    mem = make_memory()
    mem.add_memory(DOG, force_segment=True, force_extract=True)
    hits = mem.search(
        "dog engineer Lisbon Biscuit", limit=5, filters={"time_gte": dt.datetime(2024, 3, 5)}
    )
    assert [h.entry.memory for h in hits] == ["I work as a data engineer in Lisbon"]


@pytest.mark.parametrize(
    ("bad", "where"),
    [
        ({"role": "robot", "content": "x"}, "messages[1].role"),
        ({"role": "user", "content": ""}, "messages[1].content"),
        ({"role": "user", "content": "x", "time_stamp": "yesterday-ish"}, "messages[1].time_stamp"),
    ],
)
def test_bad_input_names_the_message_and_stores_nothing(make_memory, bad, where):
    mem = make_memory()
    with pytest.raises(InputError, match=where.replace("[", r"\[").replace("]", r"\]")):
        mem.add_memory([DOG[0], bad], force_segment=True, force_extract=True)
    assert mem.store.stats()["messages"] == {}


def test_reopen_restores_buffers_and_indexes(tmp_path, ref_host):
    from lightmem_core import LightMemory
    from lightmem_core.testing.reference import reference_config

    cfg = reference_config(tmp_path / "m", sensory_buffer_tokens=1000)
    with LightMemory(cfg, host=ref_host) as mem:
        mem.add_memory(DOG[:1], force_segment=True, force_extract=True)
        mem.add_memory(DOG[2:])  # stays in the sensory buffer
    with LightMemory(cfg, host=ref_host) as mem:
        assert [e.memory for e in mem.get_all()] == ["My dog is called Biscuit"]
        assert mem.search("Biscuit", limit=1, strategy="context")[0].entry.memory.endswith(
            "Biscuit"
        )
        mem.add_memory([], force_segment=True, force_extract=True)
        assert len(mem.get_all()) == 2


def test_warm_up_opens_a_reopened_memorys_indexes_before_its_first_search(make_memory):
    """After ``warm_up`` the first search of a reopened memory only searches: its indexes are
    open and in line with the record store already."""
    mem = make_memory()
    mem.add_memory(
        [{"role": "user", "content": "Biscuit is a border collie"}],
        force_segment=True,
        force_extract=True,
    )
    mem.close()
    again = make_memory()  # the same folder
    assert not again._rt.indexer._open
    again.warm_up()
    assert again._rt.indexer._open
    assert [h.entry.memory for h in again.search("border collie", limit=1)] == [
        "Biscuit is a border collie"
    ]
