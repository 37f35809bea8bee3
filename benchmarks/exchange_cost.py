"""What the exchange partners' share (``retrieval.exchange``) costs a search, on a stored memory.

Opens a memory directory an evaluation kept (``lightmem eval ... --memory-dir DIR``: pass
``DIR/<sample_id>``; copy it first, a search may write its lock file) and asks every scored
question of that sample with the stage on (the configured default) and off (``share`` 0), in
alternating rounds of one process, after one pass that leaves every question's vector in the
embedder's memory (so no round pays the encoder). It reports:

- the stage alone per search (its candidates, the positions read and the boost), timed around
  the retrieval's ``_exchanges`` in one pass of the questions, wall and the calling thread's
  CPU;
- the whole ``search()`` p50 / p95 with and without it (wall and thread CPU), nothing
  wrapped;
- the pool size, how many hits had their positions read, in how many searches the first
  ``--limit`` hits changed.

    python benchmarks/exchange_cost.py --data locomo-dev.json --memory-dir stores/conv-26
    python benchmarks/exchange_cost.py --data lme-dev/ --memory-dir lme-stores/<question_id> \\
        --benchmark longmemeval

Writes ``benchmarks/results/exchange_cost.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import attrs

RESULTS = Path(__file__).parent / "results"


def _questions(args: argparse.Namespace) -> list[str]:
    sample = Path(args.memory_dir).name
    if args.benchmark == "locomo":
        from lightmem_core.datasets import load_conversations

        conv = load_conversations(args.data, samples=[sample])[0]
        return [q.question for q in conv.questions if q.category in (1, 2, 3, 4)]
    from lightmem_core.eval.longmemeval import load_longmemeval

    questions = [
        q.question for conv in load_longmemeval(args.data, [sample]) for q in conv.questions
    ]
    return questions * 50  # one question per store: ask it many times


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--memory-dir", required=True, help="one sample's stored memory")
    parser.add_argument("--benchmark", choices=("locomo", "longmemeval"), default="locomo")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--limit", type=int, default=10)
    args = parser.parse_args()

    from lightmem_core.memory import LightMemory
    from lightmem_core.pipeline import retrieval as retrieval_module

    questions = _questions(args)
    memory = LightMemory({"memory_dir": args.memory_dir})
    rt: Any = memory._rt
    on_config = rt.config
    spec = on_config.retrieval.exchange
    off_config = attrs.evolve(
        on_config,
        retrieval=attrs.evolve(on_config.retrieval, exchange=attrs.evolve(spec, share=0.0)),
    )
    stage: dict[str, list[float]] = {"wall_ms": [], "cpu_ms": []}
    counts: dict[str, list[int]] = {"pool": [], "read": []}
    reordered = [0]
    original = retrieval_module.Retrieval._exchanges

    def timed(self: Any, fused: Any, known: Any, share: float, reach: int) -> Any:
        before = [h.id for h in fused]
        read = retrieval_module.exchange_candidates(fused, known)
        c, w = time.thread_time(), time.perf_counter()
        out = original(self, fused, known, share, reach)
        stage["wall_ms"].append((time.perf_counter() - w) * 1000)
        stage["cpu_ms"].append((time.thread_time() - c) * 1000)
        counts["pool"].append(len(before))
        counts["read"].append(len(read) if len(read) > 1 else 0)
        reordered[0] += [h.id for h in out[: args.limit]] != before[: args.limit]
        return out

    try:
        # the stage alone: one pass of every question, timed around it (first the pass that
        # leaves every question's vector in the embedder's memory)
        for q in dict.fromkeys(questions):
            memory.search(q, limit=args.limit)
        retrieval_module.Retrieval._exchanges = timed  # type: ignore[method-assign]
        for q in questions:
            memory.search(q, limit=args.limit)
        retrieval_module.Retrieval._exchanges = original  # type: ignore[method-assign]
        # the whole search with and without it, in alternating rounds, nothing wrapped
        runs: dict[str, dict[str, list[float]]] = {
            name: {"wall_ms": [], "cpu_ms": []} for name in ("on", "off")
        }
        for n in range(args.rounds):
            order = [("on", on_config), ("off", off_config)]
            for name, config in order if n % 2 == 0 else order[::-1]:
                rt.config = config
                for q in questions:
                    c, w = time.thread_time(), time.perf_counter()
                    memory.search(q, limit=args.limit)
                    runs[name]["wall_ms"].append((time.perf_counter() - w) * 1000)
                    runs[name]["cpu_ms"].append((time.thread_time() - c) * 1000)
    finally:
        retrieval_module.Retrieval._exchanges = original  # type: ignore[method-assign]
        rt.config = on_config
        memory.close()
    searches = len(counts["pool"])
    report: dict[str, Any] = {
        "memory_dir": args.memory_dir,
        "questions": len(questions),
        "rounds": args.rounds,
        "exchange": attrs.asdict(spec),
        "stage": {
            "searches": searches,
            "wall_ms_p50": statistics.median(stage["wall_ms"]) if searches else 0.0,
            "wall_ms_p95": _pct(stage["wall_ms"], 0.95) if searches else 0.0,
            "cpu_ms_p50": statistics.median(stage["cpu_ms"]) if searches else 0.0,
            "pool_p50": statistics.median(counts["pool"]) if searches else 0,
            "positions_read_p50": statistics.median(counts["read"]) if searches else 0,
            "top_changed_share": reordered[0] / searches if searches else 0.0,
        },
        "search": {
            name: {
                "wall_ms_p50": statistics.median(v["wall_ms"]),
                "wall_ms_p95": _pct(v["wall_ms"], 0.95),
                "cpu_ms_p50": statistics.median(v["cpu_ms"]),
            }
            for name, v in runs.items()
        },
    }
    s = report["stage"]
    print(
        f"stage alone: p50 {s['wall_ms_p50']:.3f} ms wall, {s['cpu_ms_p50']:.3f} ms CPU, p95 "
        f"{s['wall_ms_p95']:.3f} ms; pool {s['pool_p50']:.0f} hits, positions read for "
        f"{s['positions_read_p50']:.0f}; the first {args.limit} changed in "
        f"{s['top_changed_share']:.0%} of searches"
    )
    for name, v in report["search"].items():
        print(
            f"search, exchange {name:<3}: p50 {v['wall_ms_p50']:.2f} ms, p95 "
            f"{v['wall_ms_p95']:.2f} ms wall; p50 {v['cpu_ms_p50']:.2f} ms thread CPU"
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "exchange_cost.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
