"""What the indexes see of an entry: speaker, date in words and the turn it answered."""

from __future__ import annotations

import datetime as dt

import numpy as np
from lightmem_hookspecs import MemoryEntry, Message

from lightmem_core.indexing import (
    CONTEXT_KEY,
    NEXT_KEY,
    embedded_text,
    index_text,
    labelled_text,
    message_context,
    reply_context,
    with_speakers,
)


def message(content: str, hour: int | None = 10, speaker: str | None = "Ana", role="user"):
    stamp = dt.datetime(2023, 5, 8, hour) if hour is not None else None
    return Message(
        id=content[:8],
        role=role,
        content=content,
        original_content=content,
        time_stamp=stamp,
        speaker_name=speaker,
    )


#: A reply a day after the turns ``message`` makes (8 May 2023, 10:00): another exchange.
A_DAY_LATER = Message(
    id="late",
    role="user",
    content="Biscuit!",
    original_content="Biscuit!",
    time_stamp=dt.datetime(2023, 5, 9, 10),
)


def test_index_text_adds_speaker_date_and_context_but_not_to_the_memory():
    entry = MemoryEntry(
        id="e1",
        memory="His name is Biscuit.",
        time_stamp=dt.datetime(2023, 5, 8, 13, 56),
        speaker_name="Ana",
        metadata={"role": "user", CONTEXT_KEY: "Ben: What is the puppy called?"},
    )
    assert index_text(entry) == (
        "Ana: His name is Biscuit. (Ana, 8 May 2023) | Ben: What is the puppy called?"
    )
    assert labelled_text(entry) == "Ana: His name is Biscuit. (Ana, 8 May 2023)"  # no context
    assert embedded_text(entry) == "His name is Biscuit."  # the speaker is added as a vector
    assert entry.memory == "His name is Biscuit."
    assert index_text(MemoryEntry(id="e2", memory="plain")) == "plain"
    dated = MemoryEntry(id="e3", memory="x", time_stamp=dt.datetime(2024, 1, 2))
    assert index_text(dated) == "x (2 January 2024)"


def test_message_context_is_the_previous_turn_of_the_same_exchange():
    question = message("What is the puppy called?", hour=10, speaker="Ben")
    answer = message("Biscuit!", hour=10)
    assert message_context(question, answer) == {CONTEXT_KEY: "Ben: What is the puppy called?"}
    assert message_context(None, answer) == {}
    days_later = message("Biscuit!", hour=None)
    assert message_context(question, days_later)[CONTEXT_KEY].startswith("Ben:")  # no time
    assert message_context(question, A_DAY_LATER) == {}  # another exchange
    anonymous = message("Tell me more. " + "word " * 100, speaker=None, role="assistant")
    context = message_context(anonymous, answer)[CONTEXT_KEY]
    assert context.startswith("assistant: Tell me more.")
    assert context.endswith(" ...") and len(context.split()) < 50


def test_pipeline_entries_keep_the_turn_before_them(make_memory):
    mem = make_memory()
    mem.add_memory(
        [
            {"role": "user", "content": "I adopted a puppy.", "time_stamp": "2023-05-08T10:00"},
            {
                "role": "assistant",
                "content": "What is the puppy called?",
                "time_stamp": "2023-05-08T10:00",
            },
            {"role": "user", "content": "Biscuit!", "time_stamp": "2023-05-08T10:01"},
        ],
        force_segment=True,
        force_extract=True,
    )
    entries = {e.memory: e for e in mem.get_all()}
    assert set(entries) == {"I adopted a puppy.", "Biscuit!"}  # user_only: no assistant entry
    assert CONTEXT_KEY not in entries["I adopted a puppy."].metadata
    assert entries["Biscuit!"].metadata[CONTEXT_KEY] == "assistant: What is the puppy called?"
    # the lexical index sees the question the answer followed
    hits = mem.search("what is the puppy called", limit=2, strategy="context")
    assert [h.entry.memory for h in hits] == ["Biscuit!", "I adopted a puppy."]


EXCHANGE = [
    {"role": "user", "content": "Any plans this weekend?", "time_stamp": "2023-05-08T10:00"},
    {"role": "user", "content": "I'm off to the lake.", "time_stamp": "2023-05-08T10:01"},
    {
        "role": "assistant",
        "content": "Swimming with the kids again? Enjoy the water!",
        "time_stamp": "2023-05-08T10:01",
    },
    {"role": "user", "content": "Later that week: new job.", "time_stamp": "2023-05-09T10:00"},
]


def test_next_turn_words_add_the_reply_to_the_lexical_text(make_memory):
    mem = make_memory(indexing={"next_turn_words": 3})
    mem.add_memory(EXCHANGE, force_segment=True, force_extract=True)
    entries = {e.memory: e for e in mem.get_all()}
    lake = entries["I'm off to the lake."]
    assert lake.metadata[NEXT_KEY] == "assistant: Swimming with the ..."
    assert index_text(lake).endswith(
        "| user: Any plans this weekend? | assistant: Swimming with the ..."
    )
    assert entries["Any plans this weekend?"].metadata[NEXT_KEY] == "user: I'm off to ..."
    assert NEXT_KEY not in entries["Later that week: new job."].metadata  # the last turn
    assert reply_context(message("Any news?"), A_DAY_LATER, 3) == {}  # another exchange
    assert reply_context(message("Any news?"), message("Biscuit!"), 0) == {}
    hits = mem.search("who went swimming", limit=1, strategy="context")
    assert [h.entry.memory for h in hits] == ["I'm off to the lake."]


def test_without_next_turn_words_the_reply_is_not_indexed(make_memory):
    mem = make_memory()
    mem.add_memory(EXCHANGE, force_segment=True, force_extract=True)
    assert all(NEXT_KEY not in e.metadata for e in mem.get_all())
    assert mem.search("who went swimming", limit=1, strategy="context") == []


def test_with_speakers_adds_the_unit_name_vector_to_the_unit_text_vector():
    texts = np.array([[3.0, 0.0, 0.0], [0.0, 2.0, 0.0], [1.0, 1.0, 0.0]])
    name = np.array([0.0, 0.0, 5.0])
    out = with_speakers(texts, [name, None, name], 1.0)
    assert np.allclose(out[0], np.array([1.0, 0.0, 1.0]) / np.sqrt(2))
    assert np.allclose(out[1], [0.0, 1.0, 0.0])  # no speaker: normalised only
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0)
    half = with_speakers(texts, [name, None, None], 0.5)[0]
    assert np.allclose(half, np.array([1.0, 0.0, 0.5]) / np.linalg.norm([1.0, 0.0, 0.5]))
    assert np.allclose(with_speakers(texts, [name, name, name], 0.0)[0], [1.0, 0.0, 0.0])
    assert np.allclose(texts[0], [3.0, 0.0, 0.0])  # the input is left as it was


SAID = "the garden needs water before the trip"


def said_by(*speakers: str) -> list[dict]:
    return [
        {"role": "user", "content": SAID, "speaker_name": who, "time_stamp": "2024-01-02T10:00"}
        for who in speakers
    ]


def test_the_speakers_name_in_the_vector_finds_what_that_person_said(make_memory):
    mem = make_memory()
    mem.add(said_by("Ana", "Ben"))
    for who in ("Ana", "Ben"):
        hits = mem.search(f"what did {who} say about the garden", strategy="embedding")
        assert [h.entry.speaker_name for h in hits] == [who, "Ana" if who == "Ben" else "Ben"]
        assert hits[0].score > hits[1].score


def test_without_the_speaker_weight_the_same_words_tie(make_memory):
    # the vector alone: without the named speaker's own list in the fusion
    mem = make_memory(speaker_vector_weight=0, retrieval={"named_speaker": 0.0})
    mem.add(said_by("Ana", "Ben"))
    first, second = mem.search("what did Ana say about the garden", strategy="embedding")
    assert abs(first.score - second.score) < 1e-6


def test_a_speakers_name_is_encoded_once_per_memory(make_memory):
    mem = make_memory(vector_batch_texts=1)
    for i, turn in enumerate(said_by("Ana", "Ana", "Ben", "Ana")):
        mem.add({**turn, "content": f"{turn['content']}, day {i}"})
    usage = mem.get_token_statistics()["by_operation"]["add_memory"]
    assert usage["embedded_texts"] == 4 + 2  # four memories, two names
