"""The named speaker's lists and the segment boost between fusion and the rerankers
(``retrieval.named_speaker``, ``retrieval.segments``; lightmem_core/pipeline/focus.py); the
refusal of bad values covers ``retrieval.exchange`` too (its behaviour: test_exchange.py)."""

from __future__ import annotations

import random

import pytest
from lightmem_hookspecs import SearchHit

from lightmem_core import ConfigError
from lightmem_core.config import parse_config
from lightmem_core.pipeline.focus import boost_segments, named_speaker, read_facets
from lightmem_core.pipeline.fusion import Ranked, fuse, fuse_more

SPEAKERS = ("Caroline", "Melanie", "Anna")


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("What did Melanie paint?", "Melanie"),
        ("what did MELANIE paint", "Melanie"),
        ("What is Caroline's identity?", "Caroline"),
        ("What did Melanie and Caroline do together?", None),  # several
        ("What did Annabelle say?", None),  # a longer word is not the name
        ("What did Mel paint?", None),
        ("What did you paint?", None),
    ],
)
def test_named_speaker_is_one_whole_name(query, named):
    assert named_speaker(query, SPEAKERS) == named


def test_a_many_word_name_is_matched_as_a_phrase():
    assert named_speaker("Where does Mary Ann live?", ["Mary Ann", "Bob"]) == "Mary Ann"
    assert named_speaker("Where does Mary live?", ["Mary Ann", "Bob"]) is None


def _hit(entry_id: str, score: float) -> SearchHit:
    return SearchHit(id=entry_id, score=score)


def test_boost_segments_adds_the_segment_best_scores():
    hits = [_hit("lone", 1.0), _hit("a1", 0.9), _hit("a2", 0.8), _hit("a3", 0.7), _hit("x", 0.6)]
    topics = {"lone": 1, "a1": 2, "a2": 2, "a3": 2, "x": None}  # "x" has no segment
    out = boost_segments(hits, topics, weight=0.5, best=2)
    scores = {h.id: h.score for h in out}
    assert scores["lone"] == pytest.approx(1.0 + 0.5 * 1.0)
    assert scores["a1"] == pytest.approx(0.9 + 0.5 * (0.9 + 0.8))  # its segment's 2 best
    assert scores["a3"] == pytest.approx(0.7 + 0.5 * (0.9 + 0.8))
    assert scores["x"] == 0.6  # no segment, no boost
    assert [h.id for h in out] == ["a1", "a2", "a3", "lone", "x"]


def test_boost_segments_with_weight_zero_changes_nothing():
    hits = [_hit("a", 1.0), _hit("b", 0.5)]
    out = boost_segments(hits, {"a": 1}, weight=0.0, best=2)
    assert [(h.id, h.score) for h in out] == [("a", 1.0), ("b", 0.5)]


def _retrieval(raw):
    return parse_config({"memory_dir": "/tmp/unused", **raw}).retrieval


def test_both_are_on_without_an_llm_and_off_with_one():
    plain = _retrieval({})
    assert plain.named_speaker == 1.0
    assert (plain.segments.weight, plain.segments.hits) == (0.2, 2)
    with_llm = _retrieval({"memory_manager": {"model_name": "openai"}})
    assert with_llm.named_speaker == 0.0 and with_llm.segments.weight == 0.0
    chosen = _retrieval(
        {
            "memory_manager": {"model_name": "openai"},
            "retrieval": {"named_speaker": 0.5, "segments": {"weight": 0.1, "hits": 4}},
        }
    )
    assert chosen.named_speaker == 0.5
    assert (chosen.segments.weight, chosen.segments.hits) == (0.1, 4)


@pytest.mark.parametrize(
    ("retrieval", "where"),
    [
        ({"named_speaker": -1}, "named_speaker"),
        ({"segments": {"weight": -0.1}}, "segments.weight"),
        ({"segments": {"hits": 0}}, "segments.hits"),
        ({"segments": {"wieght": 1}}, "wieght"),
        ({"exchange": {"share": -0.1}}, "exchange.share"),
        ({"exchange": {"reach": 0}}, "exchange.reach"),
        ({"exchange": {"shares": 1}}, "shares"),
    ],
)
def test_bad_values_are_refused_with_their_path(retrieval, where):
    with pytest.raises(ConfigError, match=where.replace(".", r"\.")):
        parse_config({"memory_dir": "/tmp/unused", "retrieval": retrieval})


# -- through a memory (reference backends) ------------------------------------------------------

BOB = [f"guitar which does play guitar guitar number {i}" for i in range(8)]
ALICE = "my old guitar"


def _two_speakers(make_memory, **retrieval):
    mem = make_memory(
        retrieval={"segments": {"weight": 0}, "exchange": {"share": 0}, **retrieval}, reranker=[]
    )
    mem.add_memory(
        [{"role": "user", "content": t, "speaker_name": "Bob"} for t in BOB]
        + [{"role": "user", "content": ALICE, "speaker_name": "Alice"}],
        force_segment=True,
        force_extract=True,
    )
    return mem


def test_the_named_speakers_hits_count_twice(make_memory):
    question = "Which guitar does Alice play?"
    off = _two_speakers(make_memory, named_speaker=0)
    plain = off.search(question, limit=9)
    off.close()
    assert [h.entry.memory for h in plain].index(ALICE) > 2, "Bob's turns match more words"
    on = _two_speakers(make_memory)
    hits = on.search(question, limit=9)
    alice = next(h for h in hits if h.entry.memory == ALICE)
    assert hits[0] is alice
    assert alice.ranks["embedding@speaker"] == 1 and alice.ranks["context@speaker"] == 1
    assert not any("@speaker" in k for h in hits if h is not alice for k in h.scores)
    by_plain = {h.entry.memory: h.score for h in plain}
    for h in hits:  # Bob's hits keep their fused scores; Alice's gains her own lists' share
        if h is not alice:
            assert h.score == pytest.approx(by_plain[h.entry.memory])
    assert alice.score == pytest.approx(by_plain[ALICE] + 2 * 1.0 / (10 + 1))
    # a question naming no speaker, or both, is fused as it is
    for other in ("Which guitar does he play?", "Does Alice play Bob's guitar?"):
        assert not any("@speaker" in k for h in on.search(other, limit=3) for k in h.scores)
    # a filter naming a speaker is left as it is
    by_filter = on.search(question, limit=3, filters={"speaker": "Bob"})
    assert all(h.entry.speaker_name == "Bob" for h in by_filter)
    assert not any("@speaker" in k for h in by_filter for k in h.scores)


def test_one_speaker_in_the_pool_gets_no_lists_of_its_own(make_memory):
    mem = make_memory(retrieval={"segments": {"weight": 0}}, reranker=[])
    mem.add_memory(
        [{"role": "user", "content": t, "speaker_name": "Bob"} for t in BOB],
        force_segment=True,
        force_extract=True,
    )
    hits = mem.search("Which guitar does Bob play?", limit=3)
    assert hits and not any("@speaker" in k for h in hits for k in h.scores)


def test_the_segment_boost_reorders_the_fused_hits_by_their_sessions(make_memory):
    sessions = [
        ["the red kite flew high", "lunch was fine"],
        ["a kite festival", "my kite string broke", "kite shops were shut", "it rained"],
    ]

    def run(weight):
        mem = make_memory(retrieval={"segments": {"weight": weight}}, reranker=[])
        for session in sessions:
            mem.add_memory(
                [{"role": "user", "content": t} for t in session],
                force_segment=True,
                force_extract=True,
            )
        hits = mem.search("red kite", limit=6)
        mem.close()
        return hits

    plain = run(0)
    topics = {h.entry.memory: h.entry.topic_id for h in plain}
    assert len(set(topics.values())) == 2, "each session is a segment of its own"
    expected = {h.entry.memory: h.score for h in plain}
    best: dict[int, list[float]] = {}
    for h in plain:  # best first
        best.setdefault(h.entry.topic_id, []).append(h.score)
    for text, topic in topics.items():
        expected[text] += 4.0 * sum(best[topic][:2])
    boosted = run(4.0)
    assert {h.entry.memory: h.score for h in boosted} == pytest.approx(expected)
    assert [h.entry.memory for h in boosted] == sorted(expected, key=lambda t: -expected[t])
    assert [h.entry.memory for h in boosted] != [h.entry.memory for h in plain]


class _EntriesOnly:
    """A record store seen through ``entries`` alone (as a plugin's store without
    ``entry_facets``)."""

    def __init__(self, store):
        self.entries = store.entries


def test_facets_read_by_the_sqlite_store_equal_those_of_the_entries(make_memory):
    mem = make_memory()
    mem.add_memory(
        [{"role": "user", "content": "hello there", "speaker_name": "Ann"}],
        force_segment=True,
        force_extract=True,
    )
    mem.add_memory(
        [{"role": "user", "content": "general kenobi", "speaker_id": "u7"}],
        force_segment=True,
        force_extract=True,
    )
    ids = [e.id for e in mem.get_all()]
    retired = ids[0]
    mem.delete(retired)
    fast = read_facets(mem.store, [*ids, "no-such-id"])
    slow = read_facets(_EntriesOnly(mem.store), [*ids, "no-such-id"])
    assert fast == slow
    assert retired not in fast, "only active entries"
    assert {speaker for _, speaker in fast.values()} == {"u7"}
    assert all(topic is not None for topic, _ in fast.values())


@pytest.mark.parametrize("method", ["rrf", "weighted"])
@pytest.mark.parametrize("seed", range(20))
def test_fusing_more_lists_equals_fusing_them_all(method, seed):
    """A named speaker's lists join the fusion without every list being fused again: same
    scores, same order (ties included), same per-retriever scores and ranks."""
    rng = random.Random(seed)
    ids = [f"e{i}" for i in range(30)]

    def ranked(label, n, weight):
        picked = rng.sample(ids, n) + rng.sample(ids, 2)  # a repeated id keeps its first rank
        scores = sorted((float(rng.choice([0.5, 1.0, rng.random()])) for _ in picked), reverse=True)
        return Ranked(label, weight, list(zip(picked, scores, strict=True)))

    count = rng.choice([1, 2, 3])
    lists = [ranked(f"r{i}", rng.randint(0, 20), rng.choice([1.0, 0.4])) for i in range(count)]
    more = [ranked(f"r{i}@speaker", rng.randint(0, 8), 1.0) for i in range(rng.choice([1, 2]))]
    whole = fuse(method, [*lists, *more], k=10)
    stepwise = fuse_more(method, fuse(method, lists, k=10), lists, more, k=10)
    assert [(h.id, h.score, h.scores, h.ranks) for h in stepwise] == [
        (h.id, h.score, h.scores, h.ranks) for h in whole
    ]


def test_the_sqlite_facets_read_never_visits_the_entries_rows(make_memory):
    """The pool's facets come from one covering index: the plan of the statement the store
    runs names it."""
    mem = make_memory()
    statements: list[str] = []
    mem.store._db.set_trace_callback(statements.append)
    try:
        mem.store.entry_facets(["a", "b"])
    finally:
        mem.store._db.set_trace_callback(None)
    (read,) = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    plan = mem.store._db.execute("EXPLAIN QUERY PLAN " + read).fetchall()
    assert "COVERING INDEX entries_facets" in " ".join(str(tuple(r)) for r in plan)
