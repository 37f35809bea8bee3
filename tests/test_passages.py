"""Passages of long messages (``indexing.max_entry_words``): without an LLM a message longer than
the limit becomes several entries, each of whole sentences, with the message as its source.

The splitting itself, then a memory on the embedded default backends (MiniLM, local Qdrant,
BM25): what is stored and found, export and import, reindex, deleting a passage, erasing a
scope, and the offline update pass (the loopback OpenAI-compatible server) with several entries
per message.
"""

from __future__ import annotations

import itertools
import re

import pytest

from lightmem_core.config import DEFAULT_MAX_ENTRY_WORDS
from lightmem_core.errors import ConfigError
from lightmem_core.indexing import PASSAGE_KEY, passage_of, passage_spans, sentence_spans

REPLY = (
    "Here is a plan for your week in Japan. "
    "On Monday take the shinkansen from Tokyo to Kyoto and check in near Gion. "
    "On Tuesday visit Fushimi Inari early in the morning, before the crowds arrive. "
    "On Wednesday go to Nara and feed the deer in the park around Todai-ji temple.\n\n"
    "For food, the best okonomiyaki is in Hiroshima, where the noodles are layered in. "
    "In Osaka try takoyaki at Dotonbori and kushikatsu in Shinsekai. "
    "Remember that tipping is not customary anywhere in Japan, and it may even confuse staff. "
    "Carry some cash, since small shops and temples often do not take cards."
)


def words(text: str) -> list[str]:
    return text.split()


# -- splitting ------------------------------------------------------------------------------


def test_sentences_end_at_stops_and_line_breaks():
    text = 'He said "go!" Then left.\n- a list item\n\nLast one? Yes'
    assert [text[a:b] for a, b in sentence_spans(text)] == [
        'He said "go!"',
        "Then left.",
        "- a list item",
        "Last one?",
        "Yes",
    ]


@pytest.mark.parametrize("limit", [16, 20, 35, 60])
def test_passages_are_whole_sentences_within_the_limit_and_cover_the_text(limit):
    spans = passage_spans(REPLY, limit)
    passages = [REPLY[a:b] for a, b in spans]
    assert len(passages) >= len(words(REPLY)) / limit
    assert all(len(words(p)) <= limit for p in passages)
    assert [w for p in passages for w in words(p)] == words(REPLY)  # every word once, in order
    sentences = {REPLY[a:b] for a, b in sentence_spans(REPLY)}
    for p in passages:  # whole sentences (none is over 16 words)
        assert all(s in sentences for s in re.split(r"(?<=[.])\s+|\n\n", p))
    assert spans == sorted(spans) and all(b <= c for (_, b), (c, _) in itertools.pairwise(spans))


def test_a_short_text_is_one_passage_and_a_long_sentence_is_cut_between_words():
    assert passage_spans("Short and sweet.", 5) == [(0, 16)]
    long = " ".join(f"w{i}" for i in range(25)) + "."
    parts = [long[a:b] for a, b in passage_spans(long, 10)]
    assert [len(words(p)) for p in parts] == [9, 9, 7]
    assert " ".join(parts) == long
    with pytest.raises(ValueError):
        passage_spans(long, 0)


def test_max_entry_words_is_checked_with_its_path(tmp_path):
    from lightmem_core.config import parse_config

    assert parse_config({}).indexing.max_entry_words == DEFAULT_MAX_ENTRY_WORDS
    assert parse_config({"indexing": {"max_entry_words": None}}).indexing.max_entry_words is None
    with pytest.raises(ConfigError, match=r"\$\.indexing\.max_entry_words"):
        parse_config({"indexing": {"max_entry_words": 0}})


# -- in a memory ----------------------------------------------------------------------------

for _module in ("lightmem_huggingface", "lightmem_qdrant", "lightmem_bm25"):
    pytest.importorskip(_module, reason="the embedded default plugins are not installed")

from lightmem_core import LightMemory  # noqa: E402

QUESTION = "I'm going to Japan for a week, can you plan it and tell me what to eat?"


def conversation() -> list[dict]:
    return [
        {"role": "user", "content": QUESTION, "time_stamp": "2024-03-01T10:00:00"},
        {"role": "assistant", "content": REPLY, "time_stamp": "2024-03-01T10:00:30"},
        {"role": "user", "content": "Thanks, that helps a lot.", "time_stamp": "2024-03-01T10:02"},
    ]


def config(path, **extra) -> dict:
    return {"memory_dir": str(path), "messages_use": "hybrid", **extra}


def fill(mem: LightMemory) -> None:
    mem.add_memory(conversation(), force_segment=True, force_extract=True, user_id="ana")


def reply_entries(mem: LightMemory) -> list:
    return sorted(
        (e for e in mem.get_all(user_id="ana") if passage_of(e) is not None),
        key=lambda e: passage_of(e)["index"],
    )


@pytest.fixture
def mem(tmp_path):
    with LightMemory(config(tmp_path / "mem", indexing={"max_entry_words": 30})) as m:
        fill(m)
        yield m


@pytest.mark.slow
def test_a_long_message_becomes_passages_that_keep_its_source_and_place(mem):
    entries = mem.get_all(user_id="ana")
    passages = reply_entries(mem)
    assert len(passages) == 4 and len(entries) == 2 + len(passages)  # the short turns: 1 each
    [source] = {e.source_message_ids for e in passages}  # the reply's, for every passage
    assert [passage_of(e)["index"] for e in passages] == [0, 1, 2, 3]
    for e in passages:
        place = passage_of(e)
        assert place["of"] == 4 and REPLY[place["start"] : place["end"]] == e.memory
        assert len(words(e.memory)) <= 30 and e.speaker_id is None
        assert e.metadata["role"] == "assistant"
        assert e.metadata["context"].startswith("user: I'm going to Japan")  # the question
    assert [w for e in passages for w in words(e.memory)] == words(REPLY)
    assert len({e.id for e in passages}) == 4
    short = [e for e in entries if passage_of(e) is None]
    assert {e.memory for e in short} == {QUESTION, "Thanks, that helps a lot."}
    assert source not in {e.source_message_ids for e in short}


@pytest.mark.slow
def test_a_search_returns_the_passage_that_answers(mem):
    hits = mem.search("Where is the best okonomiyaki?", limit=1, user_id="ana")
    assert "okonomiyaki is in Hiroshima" in hits[0].entry.memory
    assert len(words(hits[0].entry.memory)) <= 30
    hits = mem.search("Should I tip at restaurants in Japan?", limit=1, user_id="ana")
    assert "tipping is not customary" in hits[0].entry.memory


@pytest.mark.slow
def test_short_messages_keep_one_entry_with_the_id_they_always_had(tmp_path):
    with (
        LightMemory(config(tmp_path / "a")) as split,
        LightMemory(config(tmp_path / "b", indexing={"max_entry_words": None})) as whole,
    ):
        fill(split)
        fill(whole)
        ids = {e.memory: e.id for e in whole.get_all(user_id="ana")}
        assert len(ids) == 3 and ids[REPLY]  # one entry per message without the limit
        assert len(words(REPLY)) > DEFAULT_MAX_ENTRY_WORDS  # so the default splits the reply
        kept = {e.memory: e.id for e in split.get_all(user_id="ana")}
        assert kept[QUESTION] == ids[QUESTION]
        assert REPLY not in kept
        first = next(e for e in reply_entries(split) if passage_of(e)["index"] == 0)
        assert first.id == ids[REPLY]


@pytest.mark.slow
def test_export_and_import_keep_every_passage(mem, tmp_path):
    from lightmem_core.transfer import export_memory, import_memory

    dump = tmp_path / "dump.jsonl"
    export_memory(mem, dump)
    before = {e.id: (e.memory, e.metadata[PASSAGE_KEY]) for e in reply_entries(mem)}
    with LightMemory(config(tmp_path / "copy", indexing={"max_entry_words": 30})) as copy:
        import_memory(copy, dump)
        after = {e.id: (e.memory, e.metadata[PASSAGE_KEY]) for e in reply_entries(copy)}
        assert after == before
        hits = copy.search("Where is the best okonomiyaki?", limit=1, user_id="ana")
        assert "okonomiyaki is in Hiroshima" in hits[0].entry.memory


@pytest.mark.slow
def test_reindex_rebuilds_the_same_passage_hits(mem):
    query = "Which day should I see the deer in Nara?"
    before = [(h.entry.id, h.entry.memory) for h in mem.search(query, limit=3, user_id="ana")]
    assert "Nara" in before[0][1]
    assert mem.reindex() == len(mem.get_all(user_id="ana"))
    after = [(h.entry.id, h.entry.memory) for h in mem.search(query, limit=3, user_id="ana")]
    assert after == before


@pytest.mark.slow
def test_deleting_one_passage_keeps_the_others_and_erasing_the_scope_removes_all(mem):
    passages = reply_entries(mem)
    food = next(e for e in passages if "okonomiyaki" in e.memory)
    mem.delete(food.id)
    left = reply_entries(mem)
    assert [e.id for e in left] == [e.id for e in passages if e.id != food.id]
    hits = mem.search("Where is the best okonomiyaki?", limit=10, user_id="ana")
    assert food.id not in {h.entry.id for h in hits}
    assert any(h.entry.id == left[0].id for h in hits)  # its siblings are still found
    receipt = mem.erase(user_id="ana")
    assert receipt.entries == len(passages) + 2  # the deleted passage's record too
    assert set(receipt.index_records.values()) == {len(left) + 2}  # it had left the indexes
    assert mem.get_all(user_id="ana") == []
    assert mem.search("Japan", limit=10, user_id="ana") == []


@pytest.mark.slow
def test_the_offline_update_never_pairs_two_passages_of_one_message(tmp_path, openai_server):
    from lightmem_core.eval.economy import ScriptedResponder, shown_checks

    openai_server.responder = ScriptedResponder()
    path = tmp_path / "mem"
    repeated = "The best okonomiyaki is in Hiroshima, where the noodles are layered in."
    with LightMemory(config(path, indexing={"max_entry_words": 30})) as m:
        fill(m)
        m.add_memory(
            [{"role": "assistant", "content": repeated, "time_stamp": "2024-04-01T09:00"}],
            force_segment=True,
            force_extract=True,
            user_id="ana",
        )
        passages = {e.memory for e in reply_entries(m)}
    llm = {
        "model_name": "openai",
        "configs": {
            "model": "gpt-4o-mini",
            "api_key": "sk-test-passages",
            "openai_base_url": openai_server.base_url,
            "max_retries": 0,
        },
    }
    with LightMemory(config(path, memory_manager=llm, update="offline")) as m:
        assert m.construct_update_queue_all_entries() > 0
        m.offline_update_all_entries(score_threshold=0.3)
        prompts = [
            r.json["messages"][1]["content"]
            for r in openai_server.chat_requests
            if r.response_format["json_schema"]["schema"]["title"] == "lightmem_update_decisions"
        ]
    assert prompts  # the newer message is checked against the older passages
    pairs = []
    for prompt in prompts:
        texts, checks = shown_checks(prompt)
        pairs += [(texts[old], texts[n]) for old, newer in checks for n in newer]
    assert any(new == repeated and old in passages for old, new in pairs)
    assert not any(old in passages and new in passages for old, new in pairs)
