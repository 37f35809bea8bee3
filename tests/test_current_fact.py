"""Without an LLM, the demo's questions are answered with the current fact first."""

from __future__ import annotations

import datetime as dt

import pytest

for _module in ("lightmem_huggingface", "lightmem_qdrant", "lightmem_sqlite_index"):
    pytest.importorskip(_module, reason="the embedded default plugins are not installed")

from lightmem_hookspecs import MemoryEntry, SearchHit  # noqa: E402

from lightmem_core import LightMemory  # noqa: E402
from lightmem_core.cli import load_demo  # noqa: E402
from lightmem_core.recency import asks_about_the_past, newer_first  # noqa: E402

#: For each demo question, words the first memory must contain (the current fact).
CURRENT = {
    "What is the name of my dog?": ["Biscuit"],
    "Which city am I moving to?": ["Porto"],
    "What is my job?": ["lead data engineer"],
    "When are my Portuguese lessons?": ["Monday"],
    "What do I eat?": ["pescatarian"],
}


@pytest.fixture(scope="module")
def demo_memory(tmp_path_factory):
    demo = load_demo()
    memory = LightMemory({"memory_dir": str(tmp_path_factory.mktemp("demo"))})
    for session in demo["sessions"]:
        messages = [
            {
                "role": m["role"],
                "content": m["content"],
                "time_stamp": session["date"],
                "speaker_name": demo["user"] if m["role"] == "user" else "assistant",
            }
            for m in session["messages"]
        ]
        memory.add_memory(messages, force_segment=True, force_extract=True, user_id=demo["user"])
    yield memory, demo
    memory.close()


def test_the_demo_questions_are_the_ones_checked(demo_memory):
    _, demo = demo_memory
    assert sorted(demo["questions"]) == sorted(CURRENT)


@pytest.mark.parametrize("question", list(CURRENT))
def test_demo_question_answered_with_the_current_fact_first(demo_memory, question):
    memory, demo = demo_memory
    hits = memory.search(question, limit=5, user_id=demo["user"])
    first = hits[0].entry.memory
    assert all(word in first for word in CURRENT[question]), (question, first)


def test_a_question_about_the_past_keeps_the_older_first(demo_memory):
    memory, demo = demo_memory
    plain = [h.id for h in memory.search("Which city am I moving to?", user_id=demo["user"])]
    past = memory.search("Which city did I live in before?", user_id=demo["user"])
    assert asks_about_the_past("Which city did I live in before?")
    assert set(plain) and past  # both answer; the past question is not reordered
    assert not asks_about_the_past("Which city am I moving to?")


def _hit(entry_id: str, text: str, day: int, score: float) -> SearchHit:
    entry = MemoryEntry(
        id=entry_id,
        memory=text,
        time_stamp=dt.datetime(2024, 1, day),
        speaker_name="Ann",
    )
    return SearchHit(id=entry_id, score=score, entry=entry)


def test_newer_competing_fact_moves_ahead_and_nothing_else_changes():
    paris = _hit("p", "I live in Paris", 1, 0.2)
    dog = _hit("d", "My dog is called Rex", 3, 0.19)
    berlin = _hit("b", "I moved to Berlin, I live there now", 5, 0.15)
    hits = [paris, dog, berlin]
    ordered = newer_first("Where do I live?", hits)
    assert [h.id for h in ordered] == ["b", "p", "d"]
    # Scores stay in rank order: the moved hit takes the score of the one it passed.
    assert [h.score for h in ordered] == [0.2, 0.2, 0.19]
    assert ordered[0].scores["newer_first"] == 0.15
    assert "newer_first" not in ordered[1].scores and "newer_first" not in ordered[2].scores
    # Asking about the past, or a newer hit that scores far lower, keeps the order.
    assert [h.id for h in newer_first("Where did I live before?", hits)] == ["p", "d", "b"]
    weak = _hit("w", "I live on a boat now", 9, 0.05)
    assert [h.id for h in newer_first("Where do I live?", [paris, weak])] == ["p", "w"]
    # Hits sharing no subject word keep their order, whatever their dates.
    assert [h.id for h in newer_first("rex", [paris, dog])] == ["p", "d"]
