"""Latency the graph retriever adds to a search, at 10k entries (target: p50 <= 5 ms).

Builds the no-LLM fallback graph of ``--entries`` memory entries made from the LoCoMo turns of
``--data`` (the turns repeated with their dates shifted by whole years until there are enough,
all in ONE scope, so entities and hubs grow with the store), in the ``networkx`` graph memory,
then times ``lightmem_core.graph.graph_search`` (query names, seed resolution, entity weights,
the bounded walk, the expansion from the best hits and the scoring of the candidates:
everything the graph element of the retrieval chain runs) for every LoCoMo question, with the
default settings (2 hops, fan-out 5, expansion from the 5 best hits). In a search the graph
receives the other retrievers' fused hits as candidates (two pools of 50); here each question
gets ``--candidates`` entries drawn at random (seeded), as many as two pools hold. The graph's
list is fused with the other retrievers' by rank, which costs microseconds; what the graph adds
to a search is this time. ``first_after_index_ms``: the first search after an ingestion batch
(the backend counts its hubs' entries again).

    python benchmarks/graph_latency.py --data /work/shared/data/locomo/locomo-dev.json

Writes ``benchmarks/results/graph_latency.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from lightmem_hookspecs import MemoryEntry, Scope, SearchFilter

from lightmem_core.datasets import load_conversations
from lightmem_core.graph import GraphBuilder, GraphSettings, graph_search
from lightmem_core.messages import parse_time

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--hops", type=int, default=GraphSettings().hops)
    parser.add_argument("--fan-out", type=int, default=GraphSettings().fan_out)
    parser.add_argument("--candidates", type=int, default=100)
    args = parser.parse_args()
    from lightmem_networkx.store import NetworkxGraph

    conversations = load_conversations(args.data)
    turns = [m for c in conversations for s in c.sessions for m in s.messages]
    questions = [q.question for c in conversations for q in c.questions]
    scope = Scope(user_id="bench")
    entries: list[MemoryEntry] = []
    shift = 0
    while len(entries) < args.entries:
        for m in turns:
            if len(entries) >= args.entries:
                break
            stamp = parse_time(m.get("time_stamp"))
            when = stamp + dt.timedelta(days=366 * shift) if stamp else None
            entries.append(
                MemoryEntry(
                    id=uuid.uuid4().hex,
                    memory=str(m["content"]),
                    source_message_ids=(f"{m['id']}-{shift}",),
                    time_stamp=when,
                    speaker_name=m.get("speaker_name"),
                    scope=scope,
                )
            )
        shift += 1
    settings = GraphSettings(hops=args.hops, fan_out=args.fan_out)
    with tempfile.TemporaryDirectory() as tmp:
        graph = NetworkxGraph(str(Path(tmp) / "graph.sqlite"))
        builder = GraphBuilder(graph, settings=settings)
        t0 = time.perf_counter()
        for start in range(0, len(entries), 256):
            builder.index(entries[start : start + 256])
        build_s = time.perf_counter() - t0
        search_filter = SearchFilter(user_id="bench")
        rng = random.Random(7)
        ids = [e.id for e in entries]
        pools = [rng.sample(ids, min(args.candidates, len(ids))) for _ in questions]
        total = len(graph.entry_ids())

        def search(q: str, pool: list[str]) -> list:
            return graph_search(
                graph,
                q,
                limit=50,
                filter=search_filter,
                settings=settings,
                candidates=pool,
                total=total,
            )

        for q, pool in list(zip(questions, pools, strict=True))[:20]:  # warm-up
            search(q, pool)
        times, reached = [], []
        for q, pool in zip(questions, pools, strict=True):
            t0 = time.perf_counter()
            hits = search(q, pool)
            times.append((time.perf_counter() - t0) * 1000)
            reached.append(len(hits))
        times.sort()
        firsts = []
        for i, (q, pool) in enumerate(list(zip(questions, pools, strict=True))[:5]):
            builder.index(entries[i * 50 : i * 50 + 50])  # re-index a batch: counts go stale
            t0 = time.perf_counter()
            search(q, pool)
            firsts.append((time.perf_counter() - t0) * 1000)
        report = {
            "entries": len(entries),
            "entities": len(graph.entities()),
            "relations": graph.count(),
            "build_s": round(build_s, 2),
            "queries": len(times),
            "hops": args.hops,
            "fan_out": args.fan_out,
            "p50_ms": round(statistics.median(times), 3),
            "p95_ms": round(times[int(0.95 * (len(times) - 1))], 3),
            "max_ms": round(times[-1], 3),
            "candidates": args.candidates,
            "first_after_index_ms": round(statistics.median(firsts), 3),
            "queries_with_graph_hits": sum(1 for n in reached if n),
            "python": platform.python_version(),
        }
        graph.close()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "graph_latency.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
