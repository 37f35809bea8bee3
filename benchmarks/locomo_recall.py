"""LoCoMo evidence recall@k of LightMem configurations beside the raw-turn baselines.

Runs the ``lightmem eval locomo`` harness (lightmem_core.eval.locomo) once per configuration
given (``--config FILE``, repeatable; ``--config default`` is the embedded default) and prints
one comparison table per run plus a summary, writing everything to
``benchmarks/results/locomo_recall.json``. ``--set KEY=JSON`` adds a configuration made of
the default with one dotted key changed, e.g. ``--set hybrid_weights.rrf_k=60``.

    python benchmarks/locomo_recall.py --data /path/to/locomo10.json [--samples conv-26]
    python benchmarks/locomo_recall.py --data locomo10.json --scripted-llm --no-baselines

``--scripted-llm`` adds an ``openai`` memory manager to every configuration, answered on a
loopback server by the project's scripted model (one fact per message, update decisions
"ignore"; ``lightmem_core.eval.economy.scripted_responder``), with the offline update after each
conversation: the recall of the LLM pipeline's retrieval, without a model's quality in it.

Target on the development split (categories 1-4, k = 10): recall@10 >= 0.70 at <= ~320 words
of retrieved context for the default pipeline. The LoCoMo data (CC BY-NC 4.0) is not part of
this repository; point ``--data`` at a copy.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

RESULTS = Path("benchmarks/results")


def dotted(key: str, value: Any) -> dict[str, Any]:
    """``("a.b", 1)`` -> ``{"a": {"b": 1}}``."""
    out: dict[str, Any] = {}
    node = out
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a LoCoMo-format JSON file")
    parser.add_argument("--samples", help="comma-separated sample ids (default: all)")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument(
        "--config", action="append", default=[], help="config file, or 'default' (repeatable)"
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=JSON", help="default + one change"
    )
    parser.add_argument("--no-baselines", action="store_true")
    parser.add_argument(
        "--scripted-llm",
        action="store_true",
        help="extract with the scripted model on a loopback server (see above)",
    )
    parser.add_argument("--out", default=str(RESULTS / "locomo_recall.json"))
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    runs: list[tuple[str, Any]] = []
    for config in args.config or ([] if args.set else ["default"]):
        runs.append((config, None if config == "default" else config))
    for item in args.set:
        key, _, value = item.partition("=")
        runs.append((f"default + {key}={value}", dotted(key, json.loads(value))))

    samples = tuple(args.samples.split(",")) if args.samples else None
    server = None
    if args.scripted_llm:
        from lightmem_core.eval.economy import scripted_responder
        from lightmem_core.eval.locomo import _load_config
        from lightmem_core.testing.openai_server import OpenAICompatibleServer

        server = OpenAICompatibleServer(responder=scripted_responder).start()
        llm = {
            "memory_manager": {
                "model_name": "openai",
                "configs": {
                    "model": "scripted",
                    "openai_base_url": server.base_url,
                    "max_tokens": 16000,
                },
            },
            "update": "offline",
        }
        runs = [(f"{name} + scripted LLM", {**_load_config(c), **llm}) for name, c in runs]
    try:
        reports = _run(args, runs, samples)
    finally:
        if server is not None:
            server.stop()

    key = f"recall@{args.k}"
    print(f"{'configuration':<44}{key:>10}{'words':>8}{'turns/s':>9}{'p50 ms':>8}")
    for name, report in reports.items():
        s = report["systems"]["lightmem"]
        print(
            f"{name[:44]:<44}{s[key]:>10.3f}{s['context_words']:>8.0f}"
            f"{s['ingest_turns_per_s'] or 0:>9.0f}{s['search_ms_p50']:>8.1f}"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    slim = {name: {k: v for k, v in r.items() if k != "questions"} for name, r in reports.items()}
    out.write_text(json.dumps(slim, indent=1, default=str), encoding="utf-8")
    print(f"written to {out}", file=sys.stderr)
    return 0


def _run(args: Any, runs: list[tuple[str, Any]], samples: tuple[str, ...] | None) -> dict:
    from lightmem_core.eval.locomo import LocomoOptions, evaluate_locomo, format_report

    reports = {}
    for n, (name, config) in enumerate(runs):
        print(f"== {name}", file=sys.stderr)
        options = LocomoOptions(
            data=args.data,
            samples=samples,
            k=args.k,
            config=config,
            baselines=not args.no_baselines and n == 0,
        )
        report = evaluate_locomo(options)
        reports[name] = report
        print(f"\n== {name}\n{format_report(report)}\n")
    return reports


if __name__ == "__main__":
    sys.exit(main())
