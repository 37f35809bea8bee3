"""Ways of ranking the retrievers' hits, compared offline on the stores an evaluation kept.

Opens each sample's store that ``lightmem eval locomo|longmemeval --memory-dir DIR`` left in
``DIR/<sample_id>`` (nothing is ingested), asks every scored question once per retriever of the
chain (``--depth`` hits each, with their scores), and ranks those pools in several ways:

- ``rrf k=K w=W``: reciprocal-rank fusion with constant K and lexical weight W (the default
  pipeline is ``rrf k=10 w=1``: its recall here equals the eval's);
- ``zscore d=D w=W``: each retriever's scores z-scored over its first D hits, summed;
- ``session-spread λ``: a hit loses a factor λ for each hit of its session already ranked;
- ``feedback m=M a=A from=F``: pseudo-relevance feedback in the vector space: the query vector
  plus A times the mean vector of the first M hits of F (``fused`` or ``lexical``), searched
  again in the vector index, replacing the vector pool before the fusion.
- ``speaker``: the pipeline's named-speaker lists (``retrieval.named_speaker``): for a question
  that names one speaker of the pool, each retriever's list kept to that speaker's hits joins
  the fusion; ``speaker searched``: each retriever searched again for that speaker instead;
- ``segments g=G m=M``: the pipeline's segment boost (``retrieval.segments``): a hit gains G
  times the summed fused scores of the M best hits of its segment; ``speaker+segments`` both
  (the default configuration: its recall equals the eval's);
- ``neighbours b=B w=W``: a hit gains B times the fused scores of the turns at most W before or
  after it in its segment (the store's insertion order; SQLite record store only).

For each it prints recall@k per category (LoCoMo evidence recall; LongMemEval turn recall per
question type and ``user5``) and the words of context, and writes
``benchmarks/results/retrieval_study.json``.

    python benchmarks/retrieval_study.py locomo --data locomo-dev.json --memory-dir stores/
    python benchmarks/retrieval_study.py longmemeval --data lme-dev/ --ids dev-ids.txt \\
        --memory-dir lme-stores/ [--only speaker,segments] [--config bm25-k1.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
SHORT = {
    "single-session-user": "ssu",
    "single-session-assistant": "ssa",
    "single-session-preference": "ssp",
    "multi-session": "ms",
    "knowledge-update": "ku",
    "temporal-reasoning": "tr",
}
USER5 = ("ssu", "ssp", "ms", "ku", "tr")


def session_of(message_id: str, benchmark: str) -> str:
    """``conv-26:D3:12`` -> ``conv-26:D3``; ``q:session:turn`` -> ``q:session``."""
    head, _, _ = message_id.rpartition(":")
    return head if benchmark == "longmemeval" else head or message_id


Pools = dict[str, list[tuple[str, float]]]
Ranker = Callable[["Sample", int, list[float], Pools], list[str]]


class Sample:
    """One store's questions, each with every retriever's pool, and what the ranking needs."""

    def __init__(self, memory: Any, questions: Sequence[Any], depth: int) -> None:
        from lightmem_hookspecs import SearchFilter

        from lightmem_core.indexing import with_speakers

        rt = memory._rt  # the retrievers' own pools: what the fusion receives
        rt.indexer.open()
        rt.indexer.flush()
        self.memory, self.embedder = memory, rt.embedder
        self.speaker_weight = float(memory.config.speaker_vector_weight)
        self._with_speakers = with_speakers
        self.chain = rt.backends.retrievers()
        self.vector = next(r for r in self.chain if r.query_by == "vector")
        self.filter = SearchFilter()
        self.depth = depth
        self.questions = []
        #: per question: the named speaker's own lists (see ``_speaker_pools``)
        self.speaker_pools: list[Pools] = []
        wanted: set[str] = set()
        for q in questions:
            qvec = [float(x) for x in self.embedder.embed([q.question])[0]]
            pools = {}
            for r in self.chain:
                query = qvec if r.query_by == "vector" else q.question
                pools[r.label] = list(r.backend.search(query, limit=depth, filter=self.filter))
                wanted.update(i for i, _ in pools[r.label])
            self.questions.append((q, qvec, pools))
        self.entries = {e.id: e for e in rt.store.entries(sorted(wanted), status="active")}
        for q, qvec, pools in self.questions:
            self.speaker_pools.append(self._speaker_pools(q.question, qvec, pools))
        # the store's order of entries, for the neighbours of a turn (SQLite record store)
        rows = rt.store._query("SELECT id, seq FROM entries WHERE status = 'active'")
        self.seq = {r["id"]: r["seq"] for r in rows}
        self.by_seq = {v: k for k, v in self.seq.items()}
        self._vectors: dict[str, Any] = {}

    def _speaker_pools(self, question: str, qvec: list[float], pools: Pools) -> Pools:
        """The pipeline's named-speaker lists (``retrieval.named_speaker``): each retriever's
        pool (50 deep) kept to the one speaker the question names among the pool's entries,
        ranked among themselves; and, to compare, each retriever searched again with the
        filter narrowed to that speaker (``@searched``). Nothing when it names none."""
        import attrs

        from lightmem_core.pipeline.focus import named_speaker, speaker_name

        head = {e for hits in pools.values() for e, _ in hits[:50] if e in self.entries}
        names = {speaker_name(self.entries[e]) for e in head}
        if len(names) < 2:
            return {}
        name = named_speaker(question, (n for n in names if n))
        if name is None:
            return {}
        narrowed = attrs.evolve(self.filter, speaker=name)
        out: Pools = {}
        for r in self.chain:
            out[f"{r.label}@speaker"] = [
                (e, s)
                for e, s in pools[r.label][:50]
                if e in self.entries and speaker_name(self.entries[e]) == name
            ]
            query = qvec if r.query_by == "vector" else question
            found = list(r.backend.search(query, limit=self.depth, filter=narrowed))
            out[f"{r.label}@searched"] = found
            missing = [e for e, _ in found if e not in self.entries]
            got = self.memory._rt.store.entries(missing, status="active") if missing else []
            self.entries.update({e.id: e for e in got})
        return out

    def topic(self, entry_id: str) -> int | None:
        return self.entries[entry_id].topic_id if entry_id in self.entries else None

    def neighbours(self, entry_id: str, window: int) -> list[str]:
        """The entries at most ``window`` before or after ``entry_id`` in its segment."""
        seq, topic, out = self.seq.get(entry_id), self.topic(entry_id), []
        if seq is None or topic is None:
            return out
        for d in range(-window, window + 1):
            other = self.by_seq.get(seq + d)
            if d and other is not None and other in self.entries and self.topic(other) == topic:
                out.append(other)
        return out

    def entry_vector(self, entry_id: str) -> Any:
        """The entry's indexed vector: its text's embedding plus its speaker's name's."""
        import numpy as np

        if entry_id not in self._vectors:
            entry = self.entries[entry_id]
            texts = [entry.memory]
            speaker = entry.speaker_name or entry.speaker_id
            rows = self.embedder.embed(texts + ([speaker] if speaker else []))
            name = [rows[1]] if speaker else [None]
            self._vectors[entry_id] = np.asarray(
                self._with_speakers(rows[:1], name, self.speaker_weight)[0]
            )
        return self._vectors[entry_id]

    def vector_search(self, vector: Sequence[float]) -> list[tuple[str, float]]:
        found = self.vector.backend.search(list(vector), limit=self.depth, filter=self.filter)
        for entry_id, _ in found:
            if entry_id not in self.entries:
                got = self.memory._rt.store.entries([entry_id], status="active")
                self.entries.update({e.id: e for e in got})
        return list(found)


def rrf_scores(
    pools: Pools, k: int, lexical_weight: float = 1.0, depth: int = 50
) -> dict[str, float]:
    score: dict[str, float] = defaultdict(float)
    for label, hits in pools.items():
        weight = lexical_weight if label.partition("@")[0] == "context" else 1.0
        for rank, (entry_id, _) in enumerate(hits[:depth], start=1):
            score[entry_id] += weight / (k + rank)
    return score


def rrf(pools: Pools, k: int, lexical_weight: float = 1.0, depth: int = 50) -> list[str]:
    score = rrf_scores(pools, k, lexical_weight, depth)
    return sorted(score, key=lambda e: -score[e])


def scaled_speakers(sample: Sample, index: int, pools: Pools, rho: float) -> list[str]:
    """RRF of the pools with the fused scores of other speakers' hits times ``rho`` when the
    question names one speaker of the pool (the ``speaker`` lists say which)."""
    from lightmem_core.pipeline.focus import speaker_name

    score = rrf_scores(pools, 10)
    named = sample.speaker_pools[index]
    if named:
        mine = {e for key, hits in named.items() if key.endswith("@speaker") for e, _ in hits}
        names = {speaker_name(sample.entries[e]) for e in mine}
        own = {e for e in score if e in sample.entries and speaker_name(sample.entries[e]) in names}
        score = {e: v * (1.0 if e in own else rho) for e, v in score.items()}
    return sorted(score, key=lambda e: -score[e])


def focused(
    sample: Sample,
    index: int,
    pools: Pools,
    *,
    speaker: str = "",
    segments: tuple[float, int] = (0.0, 2),
    neighbours: tuple[float, int] = (0.0, 1),
    distinct: bool = False,
) -> list[str]:
    """RRF (k 10, 50 deep) of the pools, with the pipeline's named-speaker lists (``speaker``
    ``"@speaker"``; ``"@searched"``: searched again for the speaker instead) and segment
    boost, and the neighbour share, as asked."""
    extra = sample.speaker_pools[index]
    lists = {**pools, **{k: v for k, v in extra.items() if speaker and k.endswith(speaker)}}
    score = rrf_scores(lists, 10)
    beta, window = neighbours
    if beta:
        score = {
            e: v + beta * sum(score.get(n, 0.0) for n in sample.neighbours(e, window))
            for e, v in score.items()
        }
    weight, best = segments
    if weight:
        tops: dict[int, list[float]] = defaultdict(list)
        seen: dict[int, set[str]] = defaultdict(set)
        for e in sorted(score, key=lambda e: -score[e]):
            topic = sample.topic(e)
            if topic is None or len(tops[topic]) >= best:
                continue
            if distinct:  # one hit per message: its passages count once
                source = sample.entries[e].source_message_ids[:1]
                if source and source[0] in seen[topic]:
                    continue
                seen[topic].update(source)
            tops[topic].append(score[e])
        score = {
            e: v + (weight * sum(tops[t]) if (t := sample.topic(e)) is not None else 0.0)
            for e, v in score.items()
        }
    return sorted(score, key=lambda e: -score[e])


def zscore(pools: Pools, depth: int, lexical_weight: float) -> list[str]:
    score: dict[str, float] = defaultdict(float)
    for label, hits in pools.items():
        values = [s for _, s in hits[:depth]]
        if not values:
            continue
        mean, sd = statistics.fmean(values), statistics.pstdev(values) or 1.0
        low = (min(values) - mean) / sd
        weight = lexical_weight if label == "context" else 1.0
        for entry_id, s in hits[:depth]:
            score[entry_id] += weight * ((s - mean) / sd - low)
    return sorted(score, key=lambda e: -score[e])


def spread(sample: Sample, order: list[str], lam: float, k: int, bench: str) -> list[str]:
    pool = [e for e in order if e in sample.entries][:50]
    base = {e: 1.0 / (10 + i + 1) for i, e in enumerate(pool)}
    seen: Counter[str] = Counter()
    out: list[str] = []
    while pool and len(out) < k:

        def value(e: str) -> float:
            sessions = {session_of(s, bench) for s in sample.entries[e].source_message_ids}
            return base[e] * lam ** max((seen[s] for s in sessions), default=0)

        best = max(pool, key=value)
        pool.remove(best)
        out.append(best)
        seen.update({session_of(s, bench) for s in sample.entries[best].source_message_ids})
    return out


def feedback(
    sample: Sample, qvec: list[float], pools: Pools, m: int, alpha: float, source: str
) -> list[str]:
    import numpy as np

    first = rrf(pools, 10) if source == "fused" else [e for e, _ in pools["context"]]
    top = [e for e in first if e in sample.entries][:m]
    query = np.asarray(qvec, dtype=np.float32)
    query /= max(float(np.linalg.norm(query)), 1e-12)
    if top:
        mean = np.mean([sample.entry_vector(e) for e in top], axis=0)
        query = query + alpha * mean / max(float(np.linalg.norm(mean)), 1e-12)
    return rrf({**pools, "embedding": sample.vector_search(query.tolist())}, 10)


def variants(bench: str, k: int) -> dict[str, Ranker]:
    out: dict[str, Ranker] = {}
    for rk in (10, 5, 20):
        for w in (1.0, 0.8, 1.25):
            out[f"rrf k={rk} w={w}"] = lambda s, i, v, p, rk=rk, w=w: rrf(p, rk, w)
    for d in (50, 100):
        for w in (0.8, 1.0):
            out[f"zscore d={d} w={w}"] = lambda s, i, v, p, d=d, w=w: zscore(p, d, w)
    for lam in (0.9, 0.6):
        out[f"session-spread {lam}"] = lambda s, i, v, p, lam=lam: spread(
            s, rrf(p, 10), lam, k, bench
        )
    for source in ("fused", "lexical"):
        for m, a in ((2, 0.3), (3, 0.3), (3, 0.5)):
            out[f"feedback m={m} a={a} from={source}"] = (
                lambda s, i, v, p, m=m, a=a, source=source: feedback(s, v, p, m, a, source)
            )
    out["speaker"] = lambda s, i, v, p: focused(s, i, p, speaker="@speaker")
    for rho in (0.5, 0.7):
        out[f"speaker x{rho}"] = lambda s, i, v, p, rho=rho: scaled_speakers(s, i, p, rho)
    out["speaker searched"] = lambda s, i, v, p: focused(s, i, p, speaker="@searched")
    out["speaker searched+segments g=0.25 m=2"] = lambda s, i, v, p: focused(
        s, i, p, speaker="@searched", segments=(0.25, 2)
    )
    for g, m in ((0.1, 2), (0.15, 2), (0.2, 2), (0.25, 2), (0.25, 3), (0.4, 3)):
        out[f"segments g={g} m={m}"] = lambda s, i, v, p, g=g, m=m: focused(
            s, i, p, segments=(g, m)
        )
        out[f"speaker+segments g={g} m={m}"] = lambda s, i, v, p, g=g, m=m: focused(
            s, i, p, speaker="@speaker", segments=(g, m)
        )
    out["speaker+segments g=0.25 m=2 per message"] = lambda s, i, v, p: focused(
        s, i, p, speaker="@speaker", segments=(0.25, 2), distinct=True
    )
    for b, w in ((0.2, 1), (0.35, 1), (0.35, 2)):
        out[f"neighbours b={b} w={w}"] = lambda s, i, v, p, b=b, w=w: focused(
            s, i, p, neighbours=(b, w)
        )
    out["speaker+segments g=0.25 m=2+neighbours b=0.1 w=2"] = lambda s, i, v, p: focused(
        s, i, p, speaker="@speaker", segments=(0.25, 2), neighbours=(0.1, 2)
    )
    return out


def score(bench: str, sample: Sample, q: Any, order: list[str], k: int) -> tuple[str, float, int]:
    kept = [sample.entries[e] for e in order if e in sample.entries][:k]
    sources = {s for e in kept for s in e.source_message_ids}
    evidence = set(q.evidence)
    group = str(q.category) if bench == "locomo" else SHORT.get(str(q.category), str(q.category))
    words = sum(len(e.memory.split()) for e in kept)
    return group, len(evidence & sources) / len(evidence), words


def load(args: argparse.Namespace) -> list[tuple[str, list[Any]]]:
    if args.benchmark == "locomo":
        from lightmem_core.datasets import load_conversations

        out = []
        for conv in load_conversations(args.data):
            chosen = [q for q in conv.questions if q.category in (1, 2, 3, 4) and q.evidence]
            out.append((conv.sample_id, chosen))
        return out
    from lightmem_core.eval.longmemeval import is_abstention, load_longmemeval, read_ids

    ids = read_ids(args.ids) if args.ids else None
    out = []
    for conv in load_longmemeval(args.data, ids):
        chosen = [
            q
            for q in conv.questions
            if q.evidence and not is_abstention(q) and q.metadata.get("evidence_turns_marked", True)
        ]
        out.append((conv.sample_id, chosen))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("benchmark", choices=("locomo", "longmemeval"))
    parser.add_argument("--data", required=True)
    parser.add_argument("--ids", help="LongMemEval: a file of question ids")
    parser.add_argument("--memory-dir", required=True, help="the stores an eval run kept")
    parser.add_argument("--config", help="the configuration the stores were filled with")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--depth", type=int, default=100, help="hits asked of each retriever")
    parser.add_argument("--only", help="comma-separated parts of the names of the rankings to run")
    args = parser.parse_args()

    from lightmem_core.config import load_config_file
    from lightmem_core.memory import LightMemory

    raw = load_config_file(args.config) if args.config else {}
    ranked = variants(args.benchmark, args.k)
    if args.only:
        parts = args.only.split(",")
        ranked = {n: r for n, r in ranked.items() if any(x in n for x in parts)}
    found: dict[str, dict[str, list[float]]] = {n: defaultdict(list) for n in ranked}
    words: dict[str, list[int]] = {n: [] for n in ranked}
    for sample_id, questions in load(args):
        folder = Path(args.memory_dir) / sample_id
        if not questions or not folder.is_dir():
            continue
        memory = LightMemory({**raw, "memory_dir": str(folder)})
        try:
            sample = Sample(memory, questions, args.depth)
            for index, (q, qvec, pools) in enumerate(sample.questions):
                for name, ranker in ranked.items():
                    group, recall, n_words = score(
                        args.benchmark, sample, q, ranker(sample, index, qvec, pools), args.k
                    )
                    found[name][group].append(recall)
                    words[name].append(n_words)
        finally:
            memory.close()
    report: dict[str, Any] = {}
    for name in ranked:
        groups = {g: statistics.fmean(v) for g, v in sorted(found[name].items())}
        row: dict[str, Any] = dict(groups)
        if args.benchmark == "locomo":
            row["all"] = statistics.fmean(x for v in found[name].values() for x in v)
        else:
            row["user5"] = statistics.fmean(groups.get(g, 0.0) for g in USER5)
        row["words"] = statistics.fmean(words[name]) if words[name] else 0.0
        report[name] = row
        cells = " ".join(f"{g} {v:.3f}" for g, v in row.items() if g != "words")
        print(f"{name:<34} {cells}  words {row['words']:.0f}")
    RESULTS.mkdir(exist_ok=True)
    out = {"benchmark": args.benchmark, "k": args.k, "depth": args.depth, "variants": report}
    (RESULTS / "retrieval_study.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
