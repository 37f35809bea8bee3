"""The ``lightmem eval`` subcommands' arguments (the main CLI calls :func:`add_eval_parser`)."""

from __future__ import annotations

import argparse
from typing import Any


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _run_locomo(args: argparse.Namespace) -> int:
    from .locomo import run_locomo

    return run_locomo(args)


def add_eval_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``eval`` (with ``eval locomo``) to the ``lightmem`` command's subparsers."""
    parser = subparsers.add_parser(
        "eval", help="benchmark the configured pipeline (evidence recall, throughput, latency)"
    )
    benchmarks = parser.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    p = benchmarks.add_parser(
        "locomo",
        help="evidence recall@k on a LoCoMo-format file, beside raw-turn baselines",
        description=(
            "Ingest each conversation into a fresh store with the configured pipeline, ask "
            "every question of the chosen categories, and report evidence recall@k per "
            "category, words of retrieved context, ingest throughput and search latency, "
            "beside BM25, dense and fused search over the raw turns."
        ),
    )
    p.add_argument("--data", required=True, help="a LoCoMo-format JSON file (a list of samples)")
    p.add_argument("--samples", help="comma-separated sample ids to run (default: all)")
    p.add_argument("--k", type=_positive_int, default=10, help="memories retrieved per question")
    p.add_argument("--config", help="LightMem configuration file (JSON, TOML or YAML)")
    p.add_argument(
        "--out", default="locomo-eval.json", help="JSON report path (default: %(default)s)"
    )
    p.add_argument(
        "--memory-dir",
        help="keep each conversation's store in DIR/<sample_id> (default: a temporary directory)",
    )
    p.add_argument(
        "--categories", default="1,2,3,4", help="question categories (default: %(default)s)"
    )
    p.add_argument("--no-baselines", action="store_true", help="skip the raw-turn baselines")
    p.add_argument(
        "--qa",
        action="store_true",
        help="answer each question with the configured LLM from the top-k memories and score "
        "it with an LLM judge (accuracy per category, latency p50/p95); needs a memory_manager",
    )
    p.add_argument("--quiet", action="store_true", help="no progress output on stderr")
    p.set_defaults(func=_run_locomo)
    return parser
