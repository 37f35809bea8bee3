"""LLM economy on LoCoMo: LightMem's calls and tokens beside a per-message reference strategy.

    python benchmarks/llm_economy.py --data /work/shared/data/locomo/locomo-dev.json
    python benchmarks/llm_economy.py --data locomo10.json --samples conv-26 \
        --base-url http://localhost:8000/v1 --model qwen2.5-7b-instruct

Without ``--base-url`` a loopback OpenAI-compatible server is started in this process and
answers like a competent model (``lightmem_core.eval.economy.scripted_responder``: one fact per
message, no update). With ``--base-url`` the real endpoint answers (key from ``--api-key-env``,
default OPENAI_API_KEY; none needed on localhost). The embedded default backends (MiniLM, local
Qdrant, BM25) run with LightMem's default thresholds.

Targets (issue 4): LightMem ingestion <= 30 LLM calls per conversation, and >= 100x fewer calls
than the per-message reference. Prints a table; writes benchmarks/results/llm_economy.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="a LoCoMo-format JSON file")
    parser.add_argument("--samples", help="comma-separated sample ids (default: all)")
    parser.add_argument("--base-url", help="an OpenAI-compatible endpoint (default: loopback)")
    parser.add_argument("--model", default="gpt-4o-mini", help="model id (default: %(default)s)")
    parser.add_argument("--api-key-env", help="environment variable holding the key")
    parser.add_argument(
        "--max-tokens",
        type=int,
        default=16000,
        help="completion limit per call, as in the original example (default: %(default)s)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="override a top-level configuration key, e.g. short_term_buffer_tokens=4096",
    )
    parser.add_argument("--top-k", type=int, default=5, help="reference's reconcile neighbours")
    parser.add_argument("--no-reference", action="store_true", help="LightMem only")
    parser.add_argument("--out", default=str(RESULTS / "llm_economy.json"))
    args = parser.parse_args(argv)

    from lightmem_core.datasets import load_conversations
    from lightmem_core.eval.economy import format_economy, measure_economy, scripted_responder
    from lightmem_core.eval.locomo import git_commit
    from lightmem_core.testing.openai_server import OpenAICompatibleServer

    samples = [s.strip() for s in args.samples.split(",")] if args.samples else None
    conversations = load_conversations(args.data, samples=samples)
    server = None
    if args.base_url is None:
        server = OpenAICompatibleServer(responder=scripted_responder).start()
    configs = {
        "model": args.model,
        "openai_base_url": args.base_url or server.base_url,
        "max_tokens": args.max_tokens,
    }
    if args.api_key_env:
        configs["api_key_env"] = args.api_key_env
    config: dict = {"memory_manager": {"model_name": "openai", "configs": configs}}
    for item in args.set:
        key, _, value = item.partition("=")
        try:
            config[key.strip()] = json.loads(value)
        except ValueError:
            config[key.strip()] = value
    started = time.perf_counter()
    try:
        report = measure_economy(
            conversations,
            config,
            server=server,
            top_k=args.top_k,
            reference=not args.no_reference,
            progress=lambda text: print(text, file=sys.stderr, flush=True),
        )
    finally:
        if server is not None:
            server.stop()
    report["endpoint"] = "loopback scripted responder" if server is not None else args.base_url
    report["data"] = args.data
    report["overrides"] = {k: v for k, v in config.items() if k != "memory_manager"}
    report["git"] = git_commit()
    report["seconds"] = round(time.perf_counter() - started, 1)
    print(format_economy(report))
    mean = report["per_conversation_mean"]
    lm_ingest = [s["lightmem"]["ingest"]["llm_calls"] for s in report["samples"]]
    print(
        f"LightMem ingestion calls per conversation: max {max(lm_ingest)}, "
        f"mean {sum(lm_ingest) / len(lm_ingest):.1f} (target <= 30)"
    )
    if "ratio" in report["totals"]:
        print(
            f"calls: reference / LightMem = {report['totals']['ratio']['calls']}x "
            f"(target >= 100x); tokens: {report['totals']['ratio']['tokens']}x"
        )
    print(f"mean per conversation: {json.dumps(mean)}")
    print(f"{report['seconds']} s")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1), encoding="utf-8")
    print(f"written to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
