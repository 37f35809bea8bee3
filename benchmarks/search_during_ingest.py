"""Search latency while an ingestion waits on a slow LLM (target: p95 <= 100 ms).

A memory on the embedded default (MiniLM, Qdrant, the default lexical index) plus an ``openai``
memory manager pointed at the project's loopback OpenAI-compatible server. The memory is first
filled with ``--prefill`` LoCoMo-like facts (fast answers); then every answer takes ``--delay``
seconds, a writer thread adds ``--batches`` flushed batches, and the main thread searches
without pause until the writer is done. Prints p50/p95/max of those searches, and the same with
no ingestion running (the baseline), and writes ``benchmarks/results/search_during_ingest.json``.

    python benchmarks/search_during_ingest.py --delay 5 --batches 3
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _timing import percentile

TOPICS = ("dog", "Porto", "lessons", "running", "coffee", "garden", "concert", "brother")


def summary(values: list[float]) -> dict[str, float]:
    return {
        "searches": len(values),
        "p50_ms": round(statistics.median(values), 2),
        "p95_ms": round(percentile(values, 0.95), 2),
        "max_ms": round(max(values), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay", type=float, default=5.0, help="seconds per LLM answer")
    parser.add_argument("--batches", type=int, default=3, help="slow batches to ingest")
    parser.add_argument("--prefill", type=int, default=200, help="facts stored beforehand")
    parser.add_argument("--out", default="benchmarks/results/search_during_ingest.json")
    args = parser.parse_args()

    from lightmem_core import LightMemory
    from lightmem_core.eval.economy import scripted_responder
    from lightmem_core.testing.openai_server import OpenAICompatibleServer

    slow = threading.Event()

    def responder(body: Any) -> str:
        if slow.is_set():
            time.sleep(args.delay)
        return scripted_responder(body)

    with OpenAICompatibleServer() as server, tempfile.TemporaryDirectory() as tmp:
        server.responder = responder
        config = {
            "memory_dir": str(Path(tmp) / "mem"),
            "memory_manager": {
                "model_name": "openai",
                "configs": {"api_key": "sk-bench", "openai_base_url": server.base_url},
            },
            "background_retry": False,
        }
        with LightMemory(config) as mem:
            mem.warm_up()
            facts = [
                {"role": "user", "content": f"Fact {i}: my {TOPICS[i % len(TOPICS)]} story {i}"}
                for i in range(args.prefill)
            ]
            for start in range(0, len(facts), 50):
                mem.add(facts[start : start + 50], user_id="bench")
            queries = [f"what about my {t}?" for t in TOPICS]
            numbers = itertools.count()

            def search_loop(stop: threading.Event | None, count: int = 0) -> list[float]:
                out: list[float] = []
                i = 0
                while (stop is not None and not stop.is_set()) or (stop is None and i < count):
                    t0 = time.perf_counter()
                    # numbered: every query is new (the embedder remembers recent texts)
                    query = f"{queries[i % len(queries)]} ({next(numbers)})"
                    mem.search(query, limit=10, user_id="bench")
                    out.append((time.perf_counter() - t0) * 1000)
                    i += 1
                return out

            idle = search_loop(None, 100)
            slow.set()
            done = threading.Event()

            def writer() -> None:
                try:
                    for b in range(args.batches):
                        mem.add(
                            [{"role": "user", "content": f"New fact {b}: I moved to city {b}"}],
                            user_id="bench",
                        )
                finally:
                    done.set()

            thread = threading.Thread(target=writer)
            started = time.perf_counter()
            thread.start()
            busy = search_loop(done)
            thread.join()
            ingest_s = time.perf_counter() - started
    report = {
        "delay_s": args.delay,
        "batches": args.batches,
        "prefill": args.prefill,
        "ingest_s": round(ingest_s, 2),
        "idle": summary(idle),
        "during_ingestion": summary(busy),
        "target_p95_ms": 100,
    }
    print(f"search while idle:            {report['idle']}")
    print(
        f"search during slow ingestion: {report['during_ingestion']} (ingestion {ingest_s:.1f} s)"
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
