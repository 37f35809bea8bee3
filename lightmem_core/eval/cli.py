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


def _run_longmemeval(args: argparse.Namespace) -> int:
    from .longmemeval import run_longmemeval

    return run_longmemeval(args)


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
    _reuse_argument(p)
    p.add_argument(
        "--qa",
        action="store_true",
        help="answer each question with the configured LLM from the top-k memories and score "
        "it with an LLM judge (accuracy per category, latency p50/p95); needs a memory_manager",
    )
    p.add_argument("--quiet", action="store_true", help="no progress output on stderr")
    _plot_argument(p)
    p.set_defaults(func=_run_locomo)

    p = benchmarks.add_parser(
        "longmemeval",
        help="turn and session recall@k on LongMemEval questions, beside raw-turn baselines",
        description=(
            "Ingest each question's haystack into a fresh store in time order, ask the "
            "question, and report per question type the recall of the evidence turns "
            "(has_answer) and sessions, words of retrieved context, ingest throughput and "
            "search latency, beside BM25, dense and fused search over the raw turns, also cut "
            "to the words the pipeline returned."
        ),
    )
    p.add_argument(
        "--data",
        required=True,
        help="a folder of per-question LongMemEval JSON files, or one JSON/JSONL file of them",
    )
    p.add_argument("--ids", help="a file of question ids to run, one a line (default: all)")
    p.add_argument("--k", type=_positive_int, default=10, help="memories retrieved per question")
    p.add_argument("--config", help="LightMem configuration file (JSON, TOML or YAML)")
    p.add_argument(
        "--out", default="longmemeval-eval.json", help="JSON report path (default: %(default)s)"
    )
    p.add_argument(
        "--memory-dir",
        help="keep each question's store in DIR/<question_id> (default: a temporary directory)",
    )
    p.add_argument("--no-baselines", action="store_true", help="skip the raw-turn baselines")
    _reuse_argument(p)
    p.add_argument(
        "--qa",
        action="store_true",
        help="answer each question with the configured LLM from the top-k memories and judge "
        "it with LongMemEval's criteria per question type; needs a memory_manager",
    )
    p.add_argument("--quiet", action="store_true", help="no progress output on stderr")
    _plot_argument(p)
    p.set_defaults(func=_run_longmemeval)
    return parser


def _reuse_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--reuse",
        action="store_true",
        help="with --memory-dir: search the stores an earlier run left there (same data, same "
        "configuration but for the fusion, rerankers and pool size) instead of ingesting again",
    )


def _plot_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--plot",
        metavar="DIR",
        help="also write PNG charts to DIR (recall@k per category and system, context words "
        "against recall, search latency); needs matplotlib",
    )
