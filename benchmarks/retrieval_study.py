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
  after it in its segment (the store's insertion order; SQLite record store only);
- ``exchange b=B w=W``: the same, counting only the turns another (known) speaker said — the
  pipeline's ``retrieval.exchange`` (share B, reach W; ``before only`` / ``after only``: from
  the turns on one side of the hit); ``spread b=B w=W``: the same, and those turns join the
  pool when no retriever returned them;
- ``dates x=X``: with the stages above, a hit whose time stamp falls in a month / year the
  question names scores (1 + X) times as much;
- ``pairs text|sum``: a third list, the 100 entries nearest the question by the vector of the
  turn together with the turn before it (embedded as one text, or the two embeddings summed
  1 : 0.5), plus its speaker's name; exact search over every entry of the store.

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
        #: every active entry: the turns next to a hit may be in no pool
        self.all_entries = {e.id: e for e in rt.store.entries(status="active")}
        self._vectors: dict[str, Any] = {}
        self._pairs: dict[str, Any] = {}

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

    def exchange(self, entry_id: str, window: int, side: int = 0) -> list[str]:
        """The entries at most ``window`` before or after ``entry_id`` in its segment that
        another (known) speaker said: the turns of its exchange (in any pool or not). None for
        a one-speaker memory, or an entry of no known speaker."""
        from lightmem_core.pipeline.focus import speaker_name

        entry = self.all_entries.get(entry_id)
        seq = self.seq.get(entry_id)
        own = speaker_name(entry) if entry is not None else None
        if own is None or seq is None:
            return []
        out = []
        for d in range(-window, window + 1):
            other = self.all_entries.get(self.by_seq.get(seq + d, ""))
            if (
                d
                and d * side >= 0  # side -1: the turns before it only; 1: after it only
                and other is not None
                and other.topic_id == entry.topic_id
                and (them := speaker_name(other)) is not None
                and them != own
            ):
                out.append(other.id)
        return out

    def pair_list(self, index: int, mode: str) -> list[tuple[str, float]]:
        """The 100 entries nearest the question by the vector of the entry's turn together
        with the turn before it in its exchange (``text``: the two texts embedded as one;
        ``sum``: the two turns' embeddings summed), each plus its speaker's name."""
        import numpy as np

        if mode not in self._pairs:
            ids = list(self.all_entries)
            texts, names = [], []
            for e in ids:
                entry = self.all_entries[e]
                context = (entry.metadata or {}).get("context") or ""
                body = context.partition(": ")[2] if context else ""
                if mode == "text":
                    texts.append(f"{body} {entry.memory}".strip())
                else:
                    texts.append(entry.memory)
                    texts.append(body or entry.memory)
                names.append(entry.speaker_name or entry.speaker_id)
            rows = np.asarray(self.embedder.embed(texts), dtype=np.float32)
            rows /= np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
            if mode != "text":
                rows = rows[0::2] + 0.5 * rows[1::2]
            distinct = sorted({n for n in names if n})
            vecs = dict(zip(distinct, self.embedder.embed(distinct), strict=True))
            matrix = self._with_speakers(
                rows, [vecs.get(n) if n else None for n in names], self.speaker_weight
            )
            self._pairs[mode] = (ids, np.asarray(matrix))
        ids, matrix = self._pairs[mode]
        q = np.asarray(self.questions[index][1], dtype=np.float32)
        sims = matrix @ (q / max(float(np.linalg.norm(q)), 1e-12))
        order = np.argsort(-sims)[:100]
        for i in order:
            self.entries.setdefault(ids[i], self.all_entries[ids[i]])
        return [(ids[i], float(sims[i])) for i in order]

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
    exchange: tuple[float, int] = (0.0, 1),
    spread_to: tuple[float, int] = (0.0, 1),
    dated: float = 0.0,
    side: int = 0,
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
    if dated:  # a question naming a month (and year) or a year: hits of that time gain
        named = named_dates(sample.questions[index][0].question)
        if named:
            score = {
                e: v * (1.0 + dated if _dated_match(sample.entries.get(e), named) else 1.0)
                for e, v in score.items()
            }
    share, reach = exchange
    if share:
        score = {
            e: v + share * sum(score.get(n, 0.0) for n in sample.exchange(e, reach, side))
            for e, v in score.items()
        }
    share, reach = spread_to
    if share:  # the hits' exchange partners outside the pool join it
        gained: dict[str, float] = defaultdict(float)
        for e, v in score.items():
            for n in sample.exchange(e, reach):
                gained[n] += share * v
        for n, v in gained.items():
            if n not in sample.entries:
                sample.entries[n] = sample.all_entries[n]
            score[n] = score.get(n, 0.0) + v
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


MONTHS = [
    "january", "february", "march", "april", "may", "june", "july", "august", "september",
    "october", "november", "december",
]  # fmt: skip


def named_dates(question: str) -> list[tuple[int | None, int | None]]:
    """``(month, year)`` pairs a question names: "in May 2023", "May", "2022"."""
    import re

    out: list[tuple[int | None, int | None]] = []
    months = "|".join(m.capitalize() for m in MONTHS)  # "may" is a verb, "May" a month
    pattern = rf"\b({months})\b(?:,?\s+(\d{{4}}))?|\b((?:19|20)\d\d)\b"
    for m in re.finditer(pattern, question):
        if m.group(1):
            out.append(
                (MONTHS.index(m.group(1).lower()) + 1, int(m.group(2)) if m.group(2) else None)
            )
        elif not any(y == int(m.group(3)) for _, y in out):
            out.append((None, int(m.group(3))))
    return out


def _dated_match(entry: Any, named: list[tuple[int | None, int | None]]) -> bool:
    when = getattr(entry, "time_stamp", None)
    if when is None:
        return False
    return any(
        (month is None or when.month == month) and (year is None or when.year == year)
        for month, year in named
    )


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
    for b in (0.05, 0.1, 0.15, 0.2, 0.3):
        for w in (1, 2):
            out[f"exchange b={b} w={w}"] = lambda s, i, v, p, b=b, w=w: focused(
                s, i, p, exchange=(b, w)
            )
            for g in (0.15, 0.2, 0.25):
                out[f"speaker+segments g={g} m=2+exchange b={b} w={w}"] = (
                    lambda s, i, v, p, g=g, b=b, w=w: focused(
                        s, i, p, speaker="@speaker", segments=(g, 2), exchange=(b, w)
                    )
                )
    for b in (0.05, 0.1, 0.15, 0.2, 0.3):
        for w in (1, 2):
            for g in (0.2, 0.25):
                out[f"speaker+segments g={g} m=2+spread b={b} w={w}"] = (
                    lambda s, i, v, p, g=g, b=b, w=w: focused(
                        s, i, p, speaker="@speaker", segments=(g, 2), spread_to=(b, w)
                    )
                )
    for b in (0.1, 0.2):
        for side, where in ((-1, "before"), (1, "after")):
            out[f"speaker+segments g=0.2 m=2+exchange b={b} w=2 {where} only"] = (
                lambda s, i, v, p, b=b, side=side: focused(
                    s, i, p, speaker="@speaker", segments=(0.2, 2), exchange=(b, 2), side=side
                )
            )
    for x in (0.2, 0.5, 1.0):
        name = f"speaker+segments g=0.2 m=2+exchange b=0.1 w=2+dates x={x}"
        out[name] = lambda s, i, v, p, x=x: focused(
            s, i, p, speaker="@speaker", segments=(0.2, 2), exchange=(0.1, 2), dated=x
        )
    for mode in ("text", "sum"):
        for g in (0.0, 0.2):
            out[f"speaker+segments g={g} m=2+pairs {mode}"] = lambda s, i, v, p, g=g, mode=mode: (
                focused(
                    s,
                    i,
                    {**p, "pairs": s.pair_list(i, mode)},
                    speaker="@speaker",
                    segments=(g, 2),
                )
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
