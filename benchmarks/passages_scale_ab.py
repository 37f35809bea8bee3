"""Search at scale with and without passages of long messages, in alternating rounds.

Fills two memory directories with the same N LoCoMo-like messages as ``search_scale.py`` (hash
embedder, ``add_memory`` without an LLM): one with the default ``indexing.max_entry_words``
(long messages become passage entries), one with ``indexing.max_entry_words: null`` (one entry
per message). Then searches both with the same questions in alternating rounds (each round
reopens its store), so that the machine's load falls on both alike, and prints p50 / p95 of the
whole ``search()`` and of its stages per round and the median over rounds
(``benchmarks/results/passages_scale_ab.json``).

    python benchmarks/passages_scale_ab.py --data /path/to/locomo10.json [--size 100000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
from pathlib import Path
from typing import Any

import search_scale as scale

RESULTS = Path("benchmarks/results")
STAGES = ("total", "vector", "lexical", "fetch", "fusion_and_rest")


def open_memory(directory: Path, passages: bool) -> Any:
    from lightmem_core import LightMemory
    from lightmem_core.plugins import PluginHost
    from lightmem_core.testing.reference import ReferencePlugin

    host = PluginHost()
    host.register(ReferencePlugin(), "reference")
    config = scale.config_for("hash", str(directory))
    if not passages:
        config = {**config, "indexing": {"max_entry_words": None}}
    return LightMemory(config, host=host)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, type=Path, help="a LoCoMo-format JSON file")
    parser.add_argument("--size", type=int, default=100_000, help="messages added to each")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--tmp", help="where the memory directories go (default: system tmp)")
    parser.add_argument("--out", type=Path, default=RESULTS / "passages_scale_ab.json")
    args = parser.parse_args()

    turns, questions = scale.load_turns(args.data)
    root = Path(tempfile.mkdtemp(prefix="lightmem-passages-ab-", dir=args.tmp))
    kinds = {"passages": True, "whole": False}
    report: dict[str, Any] = {"size": args.size, "fill": {}, "rounds": []}
    try:
        for name, passages in kinds.items():
            memory = open_memory(root / name, passages)
            seconds = scale.fill(memory, turns, args.size, 500)
            report["fill"][name] = {"seconds": round(seconds, 1), **memory.stats()["entries"]}
            memory.close()
            print(f"{name}: filled in {seconds:.0f} s, entries {report['fill'][name]}")
        for n in range(args.rounds):
            order = list(kinds) if n % 2 == 0 else list(reversed(kinds))
            for name in order:
                memory = open_memory(root / name, kinds[name])
                memory.search("warm up the indexes", limit=10)
                out = scale.measure_searches(memory, questions[: args.queries], 10)
                memory.close()
                row = {"round": n, "kind": name, **{k: out[k] for k in STAGES}}
                report["rounds"].append(row)
                print(json.dumps(row))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    for name in kinds:
        rows = [r["total"] for r in report["rounds"] if r["kind"] == name]
        median = {q: statistics.median(r[q] for r in rows) for q in ("p50", "p95")}
        report[name] = median
        print(f"{name}: search p50 {median['p50']:.2f} ms, p95 {median['p95']:.2f} ms (median)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
