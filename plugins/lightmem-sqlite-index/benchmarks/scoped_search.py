"""Filtered searches of ``sqlite-bm25`` at one size: how a search for one user or one speaker
compares with an unfiltered one.

Indexes N records cycled from LoCoMo turns (``lexical_compare.py``'s: each with its speaker's
name), each with one of ``--users`` user ids and one of ``--speakers`` speaker fields (so a user
holds 1/users of the records), in calls of 1000; then times
``--queries`` LoCoMo questions (``limit`` 50, the pool a search asks each retriever for)
unfiltered, for one user, and for one speaker, and reports p50 / p95 of each with the share of
records the filter passes. Prints a table and writes JSON (``--out``).

    python plugins/lightmem-sqlite-index/benchmarks/scoped_search.py \\
        --data /work/shared/data/locomo/locomo-dev.json --size 100000
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from lexical_compare import load, pct
from lightmem_hookspecs import BackendContext, IndexRecord, SearchFilter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, type=Path, help="a LoCoMo JSON file")
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--speakers", type=int, default=10)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/scoped_search.json"))
    args = parser.parse_args()

    from lightmem_sqlite_index.plugin import SQLiteBM25Options, build_sqlite_bm25

    texts, questions = load(args.data)
    questions = questions[: args.queries]
    with tempfile.TemporaryDirectory(prefix="lightmem-scoped-") as folder:
        index = build_sqlite_bm25(SQLiteBM25Options(), BackendContext(memory_dir=folder))
        started = time.perf_counter()
        for lo in range(0, args.size, 1000):
            index.index(
                [
                    IndexRecord(
                        f"e{i:08d}",
                        texts[i % len(texts)],
                        {"user_id": f"u{i % args.users}", "speaker": f"s{i % args.speakers}"},
                    )
                    for i in range(lo, min(args.size, lo + 1000))
                ]
            )
        fill_s = time.perf_counter() - started
        filters = {
            "unfiltered": (None, 1.0),
            "one user": (SearchFilter(user_id="u7"), 1 / args.users),
            "one speaker": (SearchFilter(speaker="s3"), 1 / args.speakers),
        }
        for question in questions[:20]:  # warm the file's pages
            index.search(question, limit=args.limit)
        rows: dict[str, Any] = {}
        for name, (flt, share) in filters.items():
            times = []
            for question in questions:
                t0 = time.perf_counter()
                index.search(question, limit=args.limit, filter=flt)
                times.append((time.perf_counter() - t0) * 1000)
            rows[name] = {
                "passing_share": share,
                "p50_ms": round(pct(times, 0.5), 3),
                "p95_ms": round(pct(times, 0.95), 3),
                "mean_ms": round(statistics.fmean(times), 3),
            }
        index.close()
    print(f"sqlite-bm25, {args.size} records, limit {args.limit}, {len(questions)} questions")
    print(f"{'search':14s} {'passing':>8s} {'p50 ms':>8s} {'p95 ms':>8s}")
    for name, row in rows.items():
        share = f"{row['passing_share']:.0%}"
        print(f"{name:14s} {share:>8s} {row['p50_ms']:8.2f} {row['p95_ms']:8.2f}")
    report = {
        "size": args.size,
        "users": args.users,
        "speakers": args.speakers,
        "limit": args.limit,
        "queries": len(questions),
        "fill_records_per_s": round(args.size / fill_s, 1),
        "searches": rows,
        "python": platform.python_version(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1), encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
