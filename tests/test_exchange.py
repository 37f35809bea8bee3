"""The exchange partners' share between fusion and the segment boost (``retrieval.exchange``;
lightmem_core/pipeline/focus.py): a hit gains a share of the fused scores of the turns next to
it that another speaker said in its segment."""

from __future__ import annotations

import pytest
from lightmem_hookspecs import EntryPositions, SearchHit

from lightmem_core.config import parse_config
from lightmem_core.pipeline.focus import boost_exchanges, exchange_candidates


def _hit(entry_id: str, score: float) -> SearchHit:
    return SearchHit(id=entry_id, score=score)


def test_a_hit_gains_the_scores_of_the_other_speakers_turns_next_to_it():
    hits = [_hit("q", 1.0), _hit("far", 0.7), _hit("reply", 0.5), _hit("own", 0.4)]
    facets = {"q": (1, "Ann"), "reply": (1, "Bob"), "own": (1, "Bob"), "far": (1, "Ann")}
    # stored: q, reply, own (Bob again), ..., far (three places after own)
    positions = {"q": 10, "reply": 11, "own": 12, "far": 15}
    out = boost_exchanges(hits, facets, positions, share=0.5, reach=1)
    scores = {h.id: h.score for h in out}
    assert scores["q"] == pytest.approx(1.0 + 0.5 * 0.5)  # its reply
    assert scores["reply"] == pytest.approx(0.5 + 0.5 * 1.0)  # what it replies to; not "own"
    assert scores["own"] == pytest.approx(0.4)  # next to Bob's own turn only
    assert scores["far"] == pytest.approx(0.7)  # out of reach
    assert [h.id for h in out] == ["q", "reply", "far", "own"]
    # reach 3: "far" (Ann) is three places after "own" (Bob) and gains its score
    again = [_hit(h, s) for h, s in (("q", 1.0), ("far", 0.7), ("reply", 0.5), ("own", 0.4))]
    wide = {h.id: h.score for h in boost_exchanges(again, facets, positions, 0.5, reach=3)}
    assert wide["far"] == pytest.approx(0.7 + 0.5 * 0.4)
    assert wide["own"] == pytest.approx(0.4 + 0.5 * (1.0 + 0.7))


def test_other_segments_unknown_speakers_and_share_zero_give_nothing():
    hits = [_hit("a", 1.0), _hit("b", 0.5), _hit("c", 0.2)]
    facets = {"a": (1, "Ann"), "b": (2, "Bob"), "c": (2, None)}
    positions = {"a": 1, "b": 2, "c": 3}
    out = boost_exchanges(hits, facets, positions, share=1.0, reach=2)
    assert [(h.id, h.score) for h in out] == [("a", 1.0), ("b", 0.5), ("c", 0.2)]
    hits = [_hit("a", 1.0), _hit("b", 0.5)]
    facets = {"a": (1, "Ann"), "b": (1, "Bob")}
    out = boost_exchanges(hits, facets, {"a": 1, "b": 2}, share=0.0, reach=2)
    assert [(h.id, h.score) for h in out] == [("a", 1.0), ("b", 0.5)]


def test_only_segments_with_two_speakers_in_the_pool_are_candidates():
    hits = [_hit("a", 1.0), _hit("b", 0.9), _hit("c", 0.8), _hit("d", 0.7)]
    facets = {"a": (1, "Ann"), "b": (1, "Bob"), "c": (2, "Ann"), "d": (2, "Ann")}
    assert exchange_candidates(hits, facets) == ["a", "b"]
    one = {"a": (1, "Ann"), "b": (1, "Ann"), "c": (2, "Ann"), "d": (None, "Bob")}
    assert exchange_candidates(hits, one) == []


def _retrieval(raw):
    return parse_config({"memory_dir": "/tmp/unused", **raw}).retrieval


def test_on_without_an_llm_and_off_with_one():
    plain = _retrieval({})
    assert (plain.exchange.share, plain.exchange.reach) == (0.1, 2)
    with_llm = _retrieval({"memory_manager": {"model_name": "openai"}})
    assert with_llm.exchange.share == 0.0
    chosen = _retrieval(
        {
            "memory_manager": {"model_name": "openai"},
            "retrieval": {"exchange": {"share": 0.3, "reach": 1}},
        }
    )
    assert (chosen.exchange.share, chosen.exchange.reach) == (0.3, 1)


# -- through a memory (reference backends, the SQLite record store) ---------------------------

SESSIONS = [
    [
        ("Ann", "any plans for the weekend"),
        ("Bob", "swimming with the kids"),
        ("Ann", "nice, enjoy the lake"),
    ],
    [
        ("Ann", "the pool was cold today"),
        ("Bob", "we went swimming yesterday"),
        ("Bob", "then we had lunch"),
    ],
]
QUESTION = "what are the plans for the weekend, swimming?"


def _run(make_memory, share, speakers=True):
    mem = make_memory(
        retrieval={
            "named_speaker": 0,
            "segments": {"weight": 0},
            "exchange": {"share": share, "reach": 1},
        },
        reranker=[],
    )
    for session in SESSIONS:
        mem.add_memory(
            [
                {"role": "user", "content": text, "speaker_name": name if speakers else "Ann"}
                for name, text in session
            ],
            force_segment=True,
            force_extract=True,
        )
    return mem


def test_the_stage_reorders_a_pool_by_its_exchanges(make_memory):
    off = _run(make_memory, 0.0)
    plain = off.search(QUESTION, limit=6)
    assert len(plain) == 6
    entries = {e.memory: e for e in off.get_all()}
    assert isinstance(off.store, EntryPositions)
    order = off.store.entry_positions([e.id for e in entries.values()])
    off.close()
    by_place = {order[e.id]: e for e in entries.values()}
    expected = {h.entry.memory: h.score for h in plain}
    for h in plain:  # each hit gains its other-speaker neighbours' fused scores
        place = order[h.entry.id]
        for near in (place - 1, place + 1):
            other = by_place.get(near)
            if (
                other is not None
                and other.topic_id == h.entry.topic_id
                and other.speaker_name != h.entry.speaker_name
            ):
                expected[h.entry.memory] += 1.0 * next(
                    p.score for p in plain if p.entry.memory == other.memory
                )
    assert expected["swimming with the kids"] > next(
        h.score for h in plain if h.entry.memory == "swimming with the kids"
    ), "the reply gains the score of what it replies to"
    assert expected["then we had lunch"] == pytest.approx(
        next(h.score for h in plain if h.entry.memory == "then we had lunch")
    ), "next to Bob's own turn only"
    on = _run(make_memory, 1.0)
    reads: list[int] = []
    original = on.store.entry_positions
    on.store.entry_positions = lambda ids: reads.append(len(ids)) or original(ids)
    boosted = on.search(QUESTION, limit=6)
    assert reads == [6], "one read of the pool's positions"
    assert {h.entry.memory: h.score for h in boosted} == pytest.approx(expected)
    assert [h.entry.memory for h in boosted] == sorted(expected, key=lambda t: -expected[t])
    assert [h.entry.memory for h in boosted] != [h.entry.memory for h in plain]


def test_a_memory_of_one_speaker_keeps_its_order_and_reads_no_positions(make_memory):
    off = _run(make_memory, 0.0, speakers=False)
    plain = [(h.entry.memory, h.score) for h in off.search(QUESTION, limit=6)]
    off.close()
    on = _run(make_memory, 1.0, speakers=False)
    store = on.store
    reads: list[int] = []
    original = store.entry_positions

    def counted(ids):
        reads.append(len(ids))
        return original(ids)

    store.entry_positions = counted
    assert [(h.entry.memory, h.score) for h in on.search(QUESTION, limit=6)] == plain
    assert reads == [], "one speaker in the pool: no exchange, nothing read"
