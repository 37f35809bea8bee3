"""Search latency and recall of the ``qdrant`` embedding retriever at 10k and 100k entries.

Target: p50 of ``QdrantRetriever.search`` (query embedding excluded: queries are precomputed
vectors) <= 3 ms at 100k stored 384-dim entries, with recall@10 >= 0.95 against exact search.

Data are synthetic clustered unit vectors (topics): ``x = normalize(c + spread * n)`` with ``c`` a
random unit topic centre and ``n`` ~ N(0, I/dim), so same-topic entries have cosine ~0.65, like
related sentences under all-MiniLM-L6-v2. Queries are fresh draws from the same topics. Payloads
carry a user (10), a speaker (4), a topic id and a time stamp, so filtered searches are realistic.

Engines: ``edge`` (the default local-path engine), ``client`` (qdrant-client in memory, pure
Python: slow, so it is skipped above --client-max entries), ``numpy`` (exact float32 matrix
product + argpartition, the reference the recall is computed against). Prints a table and writes
``benchmarks/results/search_latency.json``.

    python benchmarks/search_latency.py --sizes 10000,100000 --queries 200
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from lightmem_hookspecs import IndexRecord, SearchFilter

USERS = 10
SPEAKERS = ("alice", "bob", "carol", "dave")
T0 = 1_700_000_000.0


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def make_data(n: int, dim: int, topics: int, spread: float, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = unit(rng.standard_normal((topics, dim)))
    topic = rng.integers(0, topics, n)
    noise = rng.standard_normal((n, dim)).astype(np.float32) / np.sqrt(dim)
    return {
        "vectors": unit(centres[topic] + spread * noise),
        "topic": topic,
        "user": rng.integers(0, USERS, n),
        "speaker": rng.integers(0, len(SPEAKERS), n),
        "time": T0 + np.sort(rng.uniform(0, 365 * 86400, n)),
        "centres": centres,
    }


def make_queries(data: dict[str, np.ndarray], count: int, spread: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed + 1)
    centres = data["centres"]
    topic = rng.integers(0, len(centres), count)
    noise = rng.standard_normal((count, centres.shape[1])).astype(np.float32)
    return unit(centres[topic] + spread * noise / np.sqrt(centres.shape[1]))


def records(data: dict[str, np.ndarray], start: int, stop: int) -> list[IndexRecord]:
    vectors = data["vectors"]
    return [
        IndexRecord(
            id=f"entry-{i:07d}",
            text=f"synthetic memory {i}",
            payload={
                "user_id": f"user-{data['user'][i]}",
                "agent_id": None,
                "run_id": None,
                "speaker": SPEAKERS[data["speaker"][i]],
                "topic_id": int(data["topic"][i]) % 100,
                "time_stamp": float(data["time"][i]),
            },
            vector=tuple(vectors[i].tolist()),
        )
        for i in range(start, stop)
    ]


def query_filter(data: dict[str, np.ndarray], k: int) -> SearchFilter:
    """A scope + time-window filter: one user's memories from the second half of the year."""
    return SearchFilter(user_id=f"user-{k % USERS}", time_gte=float(np.median(data["time"])))


def filter_mask(data: dict[str, np.ndarray], f: SearchFilter) -> np.ndarray:
    users = np.array([f"user-{u}" for u in range(USERS)])[data["user"]]
    return (users == f.user_id) & (data["time"] >= f.time_gte)


def exact_top(
    data: dict[str, np.ndarray], q: np.ndarray, limit: int, mask: np.ndarray | None = None
) -> list[str]:
    scores = data["vectors"] @ q
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    top = np.argpartition(-scores, limit)[:limit]
    top = top[np.argsort(-scores[top])]
    return [f"entry-{i:07d}" for i in top if np.isfinite(scores[i])]


def percentiles(seconds: list[float], cpu: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in seconds)
    return {
        "p50_ms": statistics.median(ms),
        "p95_ms": ms[min(len(ms) - 1, int(0.95 * len(ms)))],
        "mean_ms": statistics.fmean(ms),
        "cpu_p50_ms": statistics.median(c * 1000 for c in cpu),
    }


def timed_searches(search: Any, queries: list[list[float]], filters: list[Any]) -> tuple:
    """Results, wall-clock seconds and CPU seconds (all threads of this process) per search."""
    for q, f in zip(queries[:5], filters[:5], strict=True):  # warm-up
        search(q, f)
    results, seconds, cpu = [], [], []
    for q, f in zip(queries, filters, strict=True):
        c = time.process_time()
        t = time.perf_counter()
        hits = search(q, f)
        seconds.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
        results.append([h[0] for h in hits])
    return results, seconds, cpu


def recall(found: list[list[str]], truth: list[list[str]], limit: int) -> float:
    scores = [
        len(set(f[:limit]) & set(t[:limit])) / max(1, min(limit, len(t)))
        for f, t in zip(found, truth, strict=True)
    ]
    return statistics.fmean(scores)


def bench_retriever(engine: str, data, queries, truth, truth_f, args, workdir: Path) -> dict:
    from lightmem_qdrant.plugin import QdrantOptions
    from lightmem_qdrant.store import QdrantRetriever

    n, dim = data["vectors"].shape
    if engine == "edge":
        options = QdrantOptions(path=str(workdir / "qdrant"), batch_size=args.batch_size)
    else:
        options = QdrantOptions(path=":memory:", batch_size=args.batch_size)
    retriever = QdrantRetriever(options, memory_dir=str(workdir))
    retriever.open(model_name="synthetic", dimension=dim)
    t = time.perf_counter()
    for start in range(0, n, args.index_chunk):
        retriever.upsert(records(data, start, min(n, start + args.index_chunk)))
    build_s = time.perf_counter() - t
    assert retriever.count() == n, retriever.count()
    stats = retriever.info
    qlists = [q.tolist() for q in queries]
    filters = [query_filter(data, k) for k in range(len(qlists))]

    def plain(q, _f):
        return retriever.search(q, limit=args.limit)

    def filtered(q, f):
        return retriever.search(q, limit=args.limit, filter=f)

    found, seconds, cpu = timed_searches(plain, qlists, [None] * len(qlists))
    found_f, seconds_f, cpu_f = timed_searches(filtered, qlists, filters)
    everyone = [SearchFilter(time_gte=T0 - 1.0)] * len(qlists)  # one user's store: all pass
    found_b, seconds_b, cpu_b = timed_searches(filtered, qlists, everyone)
    row = {
        "engine": engine,
        "size": n,
        "build_s": build_s,
        "segments": stats.get("segments"),
        **percentiles(seconds, cpu),
        "recall_at_10": recall(found, truth, 10),
        "filtered": {**percentiles(seconds_f, cpu_f), "recall_at_10": recall(found_f, truth_f, 10)},
        "filter_all_pass": {
            **percentiles(seconds_b, cpu_b),
            "recall_at_10": recall(found_b, truth, 10),
        },
    }
    if engine == "edge":
        retriever.close()
        t = time.perf_counter()
        retriever = QdrantRetriever(options, memory_dir=str(workdir))
        retriever.open(model_name="synthetic", dimension=dim)
        row["reopen_s"] = time.perf_counter() - t
        found_c, seconds_c, cpu_c = timed_searches(plain, qlists, [None] * len(qlists))
        row["after_reopen"] = {
            **percentiles(seconds_c, cpu_c),
            "recall_at_10": recall(found_c, truth, 10),
        }
    retriever.close()
    return row


def bench_numpy(data, queries, truth, args) -> dict:
    qs = list(queries)
    found, seconds, cpu = timed_searches(
        lambda q, _f: [(i, 0.0) for i in exact_top(data, q, args.limit)], qs, [None] * len(qs)
    )
    return {
        "engine": "numpy",
        "size": len(data["vectors"]),
        "build_s": 0.0,
        **percentiles(seconds, cpu),
        "recall_at_10": recall(found, truth, 10),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--limit", type=int, default=10)
    parser.add_argument("--topics", type=int, default=1000)
    parser.add_argument("--spread", type=float, default=0.8)
    parser.add_argument("--engines", default="edge,numpy", help="comma list: edge,client,numpy")
    parser.add_argument("--client-max", type=int, default=10000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--index-chunk", type=int, default=1024, help="records per upsert call")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", default=None, help="where stores go (default: a temp dir)")
    parser.add_argument("--out", default="benchmarks/results/search_latency.json")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]

    load_at_start = os.getloadavg()
    rows = []
    for n in sizes:
        data = make_data(n, args.dim, args.topics, args.spread, args.seed)
        queries = make_queries(data, args.queries, args.spread, args.seed)
        truth = [exact_top(data, q, args.limit) for q in queries]
        truth_f = [
            exact_top(data, q, args.limit, filter_mask(data, query_filter(data, k)))
            for k, q in enumerate(queries)
        ]
        for engine in engines:
            if engine == "client" and n > args.client_max:
                print(f"skipping client at {n} (> --client-max {args.client_max})")
                continue
            workdir = Path(tempfile.mkdtemp(prefix="lightmem-bench-", dir=args.workdir))
            try:
                if engine == "numpy":
                    row = bench_numpy(data, queries, truth, args)
                else:
                    row = bench_retriever(engine, data, queries, truth, truth_f, args, workdir)
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
            rows.append(row)
            print_row(row)

    print()
    header = f"{'engine':<8}{'size':>9}{'build s':>9}{'p50 ms':>9}{'p95 ms':>9}{'cpu p50':>9}"
    header += f"{'recall':>8}{'filt p50':>10}{'filt rec':>10}{'all-pass p50':>14}{'reopen p50':>12}"
    print(header)
    for row in rows:
        print(table_line(row))
    result = {
        "target": {"size": 100_000, "p50_ms": 3.0, "recall_at_10": 0.95},
        "settings": {k: v for k, v in vars(args).items() if k not in ("out", "workdir")},
        "machine": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_at_start": load_at_start,
            "load_average_at_end": os.getloadavg(),
        },
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"\nwrote {args.out}")


def print_row(row: dict) -> None:
    print(f"{row['engine']} @ {row['size']}: {json.dumps(row)}", flush=True)


def table_line(row: dict) -> str:
    filt = row.get("filtered", {})
    broad = row.get("filter_all_pass", {})
    reopen = row.get("after_reopen", {})
    cells = [
        f"{row['engine']:<8}",
        f"{row['size']:>9}",
        f"{row['build_s']:>9.1f}",
        f"{row['p50_ms']:>9.2f}",
        f"{row['p95_ms']:>9.2f}",
        f"{row['cpu_p50_ms']:>9.2f}",
        f"{row['recall_at_10']:>8.3f}",
        f"{filt['p50_ms']:>10.2f}" if filt else f"{'-':>10}",
        f"{filt['recall_at_10']:>10.3f}" if filt else f"{'-':>10}",
        f"{broad['p50_ms']:>14.2f}" if broad else f"{'-':>14}",
        f"{reopen['p50_ms']:>12.2f}" if reopen else f"{'-':>12}",
    ]
    return "".join(cells)


if __name__ == "__main__":
    main()
