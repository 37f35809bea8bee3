"""Single-query latency of MiniLM on 1 torch thread against torch's default, with and without a
competing CPU-bound process; then the plugin's default (``small_batch_threads: 1``) under load.

Prints p50/p95 per setting and writes ``benchmarks/results/query_threads.json``.

    python plugins/lightmem-huggingface/benchmarks/query_threads.py [--queries 40]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import time
from pathlib import Path
from typing import Any


def busy(stop: Any) -> None:
    """Keeps one core busy until told to stop."""
    x = 0
    while not stop.is_set():
        for i in range(100_000):
            x = (x * 31 + i) % 1_000_003


def latencies(embedder: Any, queries: list[str]) -> dict[str, float]:
    lat = []
    for query in queries:
        started = time.perf_counter()
        embedder.embed([query])
        lat.append((time.perf_counter() - started) * 1000)
    lat.sort()
    return {"p50": round(lat[len(lat) // 2], 1), "p95": round(lat[int(len(lat) * 0.95)], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/query_threads.json"))
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from lightmem_huggingface.embedder import HuggingFaceEmbedder

    queries = [
        f"When did Caroline go to the support group number {i}?" for i in range(args.queries)
    ]
    manual = HuggingFaceEmbedder(small_batch_threads=None)
    manual.embed(["warm up"])
    default_threads = torch.get_num_threads()
    results: dict[str, Any] = {"cpu_count": os.cpu_count(), "torch_threads": default_threads}
    for load in ("no competing process", "competing process"):
        stop = multiprocessing.Event()
        competitor = None
        if load == "competing process":
            competitor = multiprocessing.Process(target=busy, args=(stop,), daemon=True)
            competitor.start()
            time.sleep(0.5)
        try:
            for threads in sorted({1, default_threads}):
                torch.set_num_threads(threads)
                key = f"{load}, {threads} thread(s)"
                results[key] = latencies(manual, queries)
                print(f"{key}: {results[key]} ms", flush=True)
            torch.set_num_threads(default_threads)
            if competitor is not None:
                plugin_default = HuggingFaceEmbedder()
                key = f"{load}, plugin default (small_batch_threads 1)"
                results[key] = latencies(plugin_default, queries)
                print(f"{key}: {results[key]} ms", flush=True)
        finally:
            stop.set()
            if competitor is not None:
                competitor.join(5)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
