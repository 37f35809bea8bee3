"""Speed of the BM25 context retriever: one-at-a-time indexing, the lazy rebuild, searches.

Indexes N records built from LoCoMo turns one ``index`` call each (the ingestion pattern), then
times the first search (which rebuilds rank-bm25's statistics), plain searches with LoCoMo
questions, and filtered searches. Prints the numbers and writes
``benchmarks/results/bm25_speed.json``.

    python plugins/lightmem-bm25/benchmarks/bm25_speed.py --data /path/to/locomo10.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from lightmem_bm25.index import BM25Retriever
from lightmem_hookspecs import IndexRecord, SearchFilter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, type=Path, help="a LoCoMo JSON file")
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/bm25_speed.json"))
    args = parser.parse_args()

    samples = json.loads(args.data.read_text(encoding="utf-8"))
    texts = [
        turn["text"]
        for sample in samples
        for key, session in sample["conversation"].items()
        if key.startswith("session_") and isinstance(session, list)
        for turn in session
        if turn.get("text")
    ]
    questions = [q["question"] for sample in samples for q in sample["qa"]][: args.queries]
    records = [
        IndexRecord(
            str(i), texts[i % len(texts)], {"user_id": f"u{i % 10}", "time_stamp": float(i)}
        )
        for i in range(args.records)
    ]

    index = BM25Retriever()
    start = time.perf_counter()
    for record in records:
        index.index([record])
    index_s = time.perf_counter() - start

    start = time.perf_counter()
    index.search("dog", limit=10)
    rebuild_s = time.perf_counter() - start

    start = time.perf_counter()
    for question in questions:
        index.search(question, limit=10)
    search_ms = (time.perf_counter() - start) / len(questions) * 1000

    narrow = SearchFilter(user_id="u3", time_gte=args.records / 4)
    start = time.perf_counter()
    for question in questions:
        index.search(question, limit=10, filter=narrow)
    filtered_ms = (time.perf_counter() - start) / len(questions) * 1000

    result = {
        "records": args.records,
        "index_one_at_a_time_s": round(index_s, 3),
        "first_search_with_rebuild_ms": round(rebuild_s * 1000, 1),
        "search_ms_mean": round(search_ms, 2),
        "filtered_search_ms_mean": round(filtered_ms, 2),
        "queries": len(questions),
    }
    print(
        f"{args.records} records indexed one call at a time in {index_s:.2f} s; first search "
        f"(rebuild) {rebuild_s * 1000:.0f} ms; search {search_ms:.2f} ms, filtered "
        f"{filtered_ms:.2f} ms (mean of {len(questions)} LoCoMo questions)"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
