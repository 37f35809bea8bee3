"""LLM economy on LoCoMo: LightMem's calls and tokens, both call patterns, beside the original's.

    python benchmarks/llm_economy.py --data /work/shared/data/locomo/locomo-dev.json \
        --samples conv-26
    python benchmarks/llm_economy.py --data locomo10.json --samples conv-26 \
        --base-url http://localhost:8000/v1 --model qwen2.5-7b-instruct

Without ``--base-url`` a loopback OpenAI-compatible server is started in this process and
answers like a competent model (``lightmem_core.eval.economy.ScriptedResponder``: one fact per
message; update decisions "ignore", or "update" for a fixed share of the pairs shown). Tokens
are counted as OpenAI bills them: cl100k, 3 + sum(3 + content tokens) per request, plus the
JSON schema sent (``lightmem_core.eval.economy.billed_prompt_tokens``). With ``--base-url`` the
real endpoint answers and reports its own usage.

Every conversation is ingested in both call patterns (one ``add_memory`` per session; one per
turn, the session's last turn with ``force_segment``), each in a fresh memory, under three
update settings: offline with "ignore" for everything, offline with "update" for
``--update-share`` of the pairs shown (checked: every such change is applied), and online.

Targets (issue 11), per conversation and pattern: ingestion + offline update <= 10 calls and
<= 25 k prompt tokens; the offline update alone <= 2 calls and <= 3 k tokens with "ignore", <= 5
calls with 10 % "update"; online update calls <= one per extraction batch.

Prefix caching: the loopback server reports the prompt tokens a prefix-caching server (vLLM,
SGLang, OpenAI) would serve from its cache (``usage.prompt_tokens_details.cached_tokens``: the
longest prefix, in cl100k tokens, shared with an earlier request; the JSON schema counts as
part of the prefix but not in the count), and a real endpoint reports its own. Each pattern's
ingest and offline update run once more with ``kv_cache: true`` (``--no-kv-cache`` skips it):
the "cached" columns are those tokens, with and without. The original
LightMem on conv-26 with the same counting: 21 + 2 calls, 49.9 k + 1.2 k tokens. Prints a table;
writes benchmarks/results/llm_economy.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

RESULTS = Path(__file__).resolve().parent / "results"

#: The original LightMem (zjunlp/LightMem) on LoCoMo conv-26, counted the same way (issue 11).
ORIGINAL = {
    "sample_id": "conv-26",
    "ingest": {"llm_calls": 21, "prompt_tokens": 49_900},
    "update": {"llm_calls": 2, "prompt_tokens": 1_200},
}
TARGETS = {
    "total_calls": 10,
    "total_prompt_tokens": 25_000,
    "update_ignore_calls": 2,
    "update_ignore_prompt_tokens": 3_000,
    "update_share_calls": 5,
}


def ingest(conv: Any, config: dict, server: Any, responder: Any, pattern: str, where: Path) -> dict:
    """Ingest ``conv`` into a memory at ``where`` (offline update left out); its report."""
    from lightmem_core.eval.economy import lightmem_economy

    if server is not None:
        server.responder = responder
    report, memory = lightmem_economy(
        conv, config, memory_dir=where, server=server, pattern=pattern, update=False
    )
    memory.close()
    return report


def offline_pass(config: dict, server: Any, responder: Any, where: Path) -> dict:
    """Run the offline update on the memory at ``where``: its calls, tokens and changes."""
    from lightmem_core.eval.economy import PhaseUsage, cached_prompt_tokens
    from lightmem_core.memory import LightMemory

    if server is not None:
        server.responder = responder
    with LightMemory({**config, "memory_dir": str(where)}) as memory:
        cached0 = cached_prompt_tokens(memory)
        before = PhaseUsage.of(memory.get_token_statistics()["by_operation"].get("update"))
        t0 = time.perf_counter()
        queued = memory.construct_update_queue_all_entries()
        changes = memory.offline_update_all_entries()
        seconds = time.perf_counter() - t0
        after = PhaseUsage.of(memory.get_token_statistics()["by_operation"].get("update"))
        used = PhaseUsage(
            after.llm_calls - before.llm_calls,
            after.prompt_tokens - before.prompt_tokens,
            after.completion_tokens - before.completion_tokens,
        )
        return {
            "update": used.as_dict(),
            "update_queue": queued,
            "update_changes": len(changes),
            "updated_texts": sorted(c.new_memory for c in changes if c.action == "update"),
            "active_entries": len(memory.get_all()),
            "update_s": round(seconds, 3),
            "cached_prompt_tokens": cached_prompt_tokens(memory) - cached0,
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="a LoCoMo-format JSON file")
    parser.add_argument("--samples", default="conv-26", help="comma-separated sample ids")
    parser.add_argument("--base-url", help="an OpenAI-compatible endpoint (default: loopback)")
    parser.add_argument("--model", default="gpt-4o-mini", help="model id (default: %(default)s)")
    parser.add_argument("--api-key-env", help="environment variable holding the key")
    parser.add_argument(
        "--max-tokens",
        type=int,
        default=16000,
        help="completion limit per call, as in the original example (default: %(default)s); "
        "0: none set, the memory manager's own default",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="override a top-level configuration key, e.g. short_term_buffer_tokens=4096",
    )
    parser.add_argument(
        "--patterns", default="session,turn", help="call patterns (default: %(default)s)"
    )
    parser.add_argument(
        "--update-share",
        type=float,
        default=0.1,
        help="share of shown pairs the scripted model updates (default: %(default)s)",
    )
    parser.add_argument("--no-online", action="store_true", help="skip the online-update runs")
    parser.add_argument(
        "--no-kv-cache", action="store_true", help="skip the runs with kv_cache: true"
    )
    parser.add_argument("--out", default=str(RESULTS / "llm_economy.json"))
    args = parser.parse_args(argv)

    from lightmem_core.datasets import load_conversations
    from lightmem_core.eval.economy import Billed, ScriptedResponder, cl100k
    from lightmem_core.eval.locomo import git_commit
    from lightmem_core.testing.openai_server import OpenAICompatibleServer

    samples = [s.strip() for s in args.samples.split(",")] if args.samples else None
    conversations = load_conversations(args.data, samples=samples)
    patterns = [p.strip() for p in args.patterns.split(",") if p.strip()]
    server = None
    if args.base_url is None:
        server = OpenAICompatibleServer(
            responder=Billed(ScriptedResponder()), tokenize=cl100k().encode
        ).start()
    base_url = args.base_url if server is None else server.base_url
    configs: dict[str, Any] = {"model": args.model, "openai_base_url": base_url}
    if args.max_tokens:
        configs["max_tokens"] = args.max_tokens
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
    runs: list[dict[str, Any]] = []
    say = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
    try:
        for conv in conversations:
            for pattern in patterns:
                tag = f"{conv.sample_id} {pattern}"
                with tempfile.TemporaryDirectory(prefix="lightmem-economy-") as tmp:
                    say(f"[{tag}] ingest")
                    base = Path(tmp) / "ingested"
                    offline = {**config, "update": "offline"}
                    row: dict[str, Any] = {
                        "sample_id": conv.sample_id,
                        "pattern": pattern,
                        "turns": len(conv.messages),
                        "ingest": ingest(
                            conv, offline, server, Billed(ScriptedResponder()), pattern, base
                        ),
                    }
                    ignore = ScriptedResponder()
                    where = Path(tmp) / "ignore"
                    shutil.copytree(base, where)
                    say(f"[{tag}] offline update, decisions 'ignore'")
                    row["update_ignore"] = offline_pass(offline, server, Billed(ignore), where)
                    if server is not None:
                        row["update_ignore"]["pairs_shown"] = ignore.pairs_shown
                        share = ScriptedResponder(update_fraction=args.update_share)
                        where = Path(tmp) / "share"
                        shutil.copytree(base, where)
                        say(f"[{tag}] offline update, 'update' for {args.update_share:.0%}")
                        report = offline_pass(offline, server, Billed(share), where)
                        decided = [new for _old, new in share.updates]
                        report |= {
                            "pairs_shown": share.pairs_shown,
                            "updates_decided": len(decided),
                            "updates_applied": sum(t in report["updated_texts"] for t in decided),
                        }
                        row["update_share"] = report
                    if not args.no_online:
                        say(f"[{tag}] ingest with online update")
                        responder = Billed(ScriptedResponder(update_fraction=args.update_share))
                        row["online"] = ingest(
                            conv,
                            {**config, "update": "online"},
                            server,
                            responder,
                            pattern,
                            Path(tmp) / "online",
                        )
                    if not args.no_kv_cache:
                        say(f"[{tag}] ingest and offline update with kv_cache: true")
                        cached = {**offline, "kv_cache": True}
                        where = Path(tmp) / "kv_cache"
                        row["kv_cache"] = ingest(
                            conv, cached, server, Billed(ScriptedResponder()), pattern, where
                        )
                        row["kv_cache_update"] = offline_pass(
                            cached, server, Billed(ScriptedResponder()), where
                        )
                        row["kv_cache_update"].pop("updated_texts", None)
                for key in ("update_ignore", "update_share"):
                    row.get(key, {}).pop("updated_texts", None)
                row["total"] = {
                    "llm_calls": row["ingest"]["ingest"]["llm_calls"]
                    + row["update_ignore"]["update"]["llm_calls"],
                    "prompt_tokens": row["ingest"]["ingest"]["prompt_tokens"]
                    + row["update_ignore"]["update"]["prompt_tokens"],
                }
                say(json.dumps({k: row[k] for k in ("pattern", "total")}))
                runs.append(row)
    finally:
        if server is not None:
            server.stop()
    report = {
        "benchmark": "llm_economy",
        "endpoint": "loopback scripted responder (cl100k counting)"
        if server is not None
        else args.base_url,
        "data": args.data,
        "overrides": {k: v for k, v in config.items() if k != "memory_manager"},
        "original_lightmem": ORIGINAL,
        "targets": TARGETS,
        "runs": runs,
        "git": git_commit(),
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(format_report(report))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1), encoding="utf-8")
    print(f"written to {out}", file=sys.stderr)
    return 0


def _k(tokens: int) -> str:
    return f"{tokens / 1000:.1f}k"


def format_report(report: dict) -> str:
    """One line per conversation and pattern, the original LightMem's figures first."""
    cell = lambda calls, tokens: f"{calls} / {_k(tokens)}"  # noqa: E731
    head = (
        f"{'run':<22}{'ingest':>14}{'update':>14}{'total':>14}"
        f"{'upd share':>14}{'applied':>9}{'online upd':>16}{'cached':>16}{'cached kv':>16}"
    )
    lines = [head]
    o = report["original_lightmem"]
    calls = o["ingest"]["llm_calls"] + o["update"]["llm_calls"]
    tokens = o["ingest"]["prompt_tokens"] + o["update"]["prompt_tokens"]
    lines.append(
        f"{'original ' + o['sample_id']:<22}"
        f"{cell(o['ingest']['llm_calls'], o['ingest']['prompt_tokens']):>14}"
        f"{cell(o['update']['llm_calls'], o['update']['prompt_tokens']):>14}"
        f"{cell(calls, tokens):>14}"
    )
    for run in report["runs"]:
        ingest = run["ingest"]["ingest"]
        update = run["update_ignore"]["update"]
        share = run.get("update_share")
        online = run.get("online")
        row = (
            f"{run['sample_id'] + ' ' + run['pattern']:<22}"
            f"{cell(ingest['llm_calls'], ingest['prompt_tokens']):>14}"
            f"{cell(update['llm_calls'], update['prompt_tokens']):>14}"
            f"{cell(run['total']['llm_calls'], run['total']['prompt_tokens']):>14}"
        )
        if share:
            row += f"{cell(share['update']['llm_calls'], share['update']['prompt_tokens']):>14}"
            row += f"{share['updates_applied']}/{share['updates_decided']}".rjust(9)
        else:
            row += f"{'-':>14}{'-':>9}"
        if online:
            calls = f"{online['update']['llm_calls']} / {online['batches_extracted']} batches"
            row += calls.rjust(16)
        else:
            row += f"{'-':>16}"
        row += _cached(run["ingest"]["cached_prompt_tokens"]["ingest"], ingest["prompt_tokens"])
        kv = run.get("kv_cache")
        if kv:
            row += _cached(kv["cached_prompt_tokens"]["ingest"], kv["ingest"]["prompt_tokens"])
        lines.append(row)
    lines.append(
        "cells: LLM calls / prompt tokens (cl100k, schema included); online upd: update calls "
        "/ extraction batches; cached: ingest prompt tokens the server's prefix cache served "
        "(share), kv: with kv_cache: true"
    )
    return "\n".join(lines)


def _cached(cached: int, prompt: int) -> str:
    share = f" ({cached / prompt:.0%})" if prompt else ""
    return f"{_k(cached)}{share}".rjust(16)


if __name__ == "__main__":
    sys.exit(main())
