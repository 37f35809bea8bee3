"""The llama-cpp manager's KV cache on LoCoMo: prompt tokens evaluated and time per extraction call.

    nice python plugins/lightmem-llamacpp/benchmarks/kv_cache_locomo.py \\
        --data /work/shared/data/locomo/locomo-dev.json --sample conv-26 --sessions 6

One conversation is ingested (one ``add_memory`` per session, each flushed to one extraction
call) with the ``llama-cpp`` manager (SmolLM2-135M unless ``--model``), in the same run:

- ``off``: ``kv_cache: false``, one memory open for the whole conversation;
- ``on``: ``kv_cache: true``, an empty cache folder, one memory open;
- ``off-reopen`` / ``on-reopen``: the memory opened and closed around each session (a fresh
  model worker each time, as a command-line ``lightmem add`` per session does); the ``on`` one
  with its own empty cache folder.

Per extraction call: prompt tokens, tokens evaluated (not restored from a cache file nor reused
from the previous call in the worker) and wall time. Checked: the stored memories are the same
texts in every run (greedy decoding). Prints a table; writes
``benchmarks/results/kv_cache_locomo.json`` under the repository root.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
RESULTS = ROOT / "benchmarks" / "results"


def config(memory_dir: Path, model: str | None, kv: Path | None, max_tokens: int) -> dict:
    configs: dict[str, Any] = {
        "n_ctx": 4096,
        "max_tokens": max_tokens,
        "n_threads": 1,
        "timeout": 1800,
    }
    if model:
        configs["model_path"] = model
    return {
        "memory_dir": str(memory_dir),
        "memory_manager": {"model_name": "llama-cpp", "configs": configs},
        "retrieve_strategy": "context",
        "context_retriever": {"model_name": "sqlite-bm25"},
        "text_embedder": None,
        "embedding_retriever": None,
        "metadata_generate": False,
        "text_summary": False,
        "update": "offline",
        "kv_cache": kv is not None,
        "kv_cache_path": str(kv) if kv is not None else None,
        "background_retry": False,
    }


def instrument(memory: Any, calls: list[dict[str, Any]]) -> None:
    """Record each extraction call of the memory's llama-cpp manager."""
    backend = memory.backends.memory_manager().backend

    complete = backend.complete

    def timed(*args: Any, **kwargs: Any) -> Any:
        before = backend.cache_stats()
        started = time.perf_counter()
        result = complete(*args, **kwargs)
        seconds = time.perf_counter() - started
        after = backend.cache_stats()
        calls.append(
            {
                "prompt_tokens": result.prompt_tokens,
                "evaluated_tokens": after["evaluated_tokens"] - before["evaluated_tokens"],
                "restored_tokens": after["restored_tokens"] - before["restored_tokens"],
                "reused_tokens": after["reused_tokens"] - before["reused_tokens"],
                "completion_tokens": result.completion_tokens,
                "seconds": round(seconds, 3),
            }
        )
        return result

    backend.complete = timed


def run(label: str, sessions: list, make_config, reopen: bool) -> dict[str, Any]:
    from lightmem_core import LightMemory

    calls: list[dict[str, Any]] = []
    started = time.perf_counter()
    memory = None
    texts: list[str] = []
    try:
        for i, session in enumerate(sessions):
            if memory is None:
                memory = LightMemory(make_config())
                memory.backends.memory_manager().backend.complete(
                    [{"role": "user", "content": "Hi"}], max_tokens=1
                )  # start the worker and load the model outside the timings
                instrument(memory, calls)
            memory.add_memory(list(session.messages), force_segment=True, force_extract=True)
            if reopen or i == len(sessions) - 1:
                texts = sorted(e.memory for e in memory.get_all())
                memory.close()
                memory = None
    finally:
        if memory is not None:
            memory.close()
    total = time.perf_counter() - started
    print(f"[{label}] {len(calls)} calls, {total:.1f} s", file=sys.stderr, flush=True)
    return {"label": label, "calls": calls, "memories": texts, "seconds": round(total, 1)}


def summary(result: dict[str, Any]) -> dict[str, Any]:
    calls = result["calls"]
    prompt = sum(c["prompt_tokens"] for c in calls)
    evaluated = sum(c["evaluated_tokens"] for c in calls)
    return {
        "calls": len(calls),
        "prompt_tokens": prompt,
        "evaluated_tokens": evaluated,
        "evaluated_share": round(evaluated / prompt, 3) if prompt else None,
        "evaluated_per_call_mean": round(evaluated / len(calls), 1) if calls else None,
        "seconds_per_call_median": round(statistics.median(c["seconds"] for c in calls), 3)
        if calls
        else None,
        "seconds_per_call_mean": round(statistics.fmean(c["seconds"] for c in calls), 3)
        if calls
        else None,
        "memories": len(result["memories"]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="a LoCoMo-format JSON file")
    parser.add_argument("--sample", default="conv-26")
    parser.add_argument("--sessions", type=int, default=0, help="first N sessions (0: all)")
    parser.add_argument("--model", help="a GGUF file (default: SmolLM2-135M)")
    parser.add_argument("--max-tokens", type=int, default=256, help="answer limit per call")
    parser.add_argument("--out", default=str(RESULTS / "kv_cache_locomo.json"))
    args = parser.parse_args(argv)

    from lightmem_core.datasets import load_conversations

    (conv,) = load_conversations(args.data, samples=[args.sample])
    sessions = conv.sessions[: args.sessions] if args.sessions else conv.sessions
    results = []
    with tempfile.TemporaryDirectory(prefix="lightmem-kv-bench-") as tmp:
        base, kv = Path(tmp), Path(tmp) / "kv"
        counter = iter(range(1000))

        def fresh(kv_dir: Path | None):
            return lambda: config(
                base / f"mem-{next(counter)}", args.model, kv_dir, args.max_tokens
            )

        kv2 = Path(tmp) / "kv-reopen"

        def reopened(where: Path, kv_dir: Path | None):
            return lambda: config(where, args.model, kv_dir, args.max_tokens)

        plans = [
            ("off", fresh(None), False),
            ("on", fresh(kv), False),
            ("off-reopen", reopened(base / "mem-off-reopen", None), True),
            ("on-reopen", reopened(base / "mem-on-reopen", kv2), True),
        ]
        for label, make, reopen in plans:
            results.append(run(label, sessions, make, reopen))
        cache_files = sorted(p.name for p in kv.glob("*.lmkv"))
        cache_bytes = sum(p.stat().st_size for p in kv.glob("*.lmkv"))
        shutil.rmtree(kv, ignore_errors=True)
    same = all(r["memories"] == results[0]["memories"] for r in results)
    report = {
        "benchmark": "kv_cache_locomo",
        "data": args.data,
        "sample": args.sample,
        "sessions": len(sessions),
        "model": args.model or "SmolLM2-135M-Instruct.Q4_1 (default)",
        "max_tokens": args.max_tokens,
        "identical_memories": same,
        "cache_files": len(cache_files),
        "cache_bytes": cache_bytes,
        "runs": {r["label"]: {**summary(r), "per_call": r["calls"]} for r in results},
    }
    head = f"{'run':<12}{'calls':>6}{'prompt tok':>12}{'evaluated':>11}{'share':>7}"
    head += f"{'eval/call':>11}{'s/call med':>12}{'s/call mean':>13}"
    print(head)
    for label, row in report["runs"].items():
        print(
            f"{label:<12}{row['calls']:>6}{row['prompt_tokens']:>12}{row['evaluated_tokens']:>11}"
            f"{row['evaluated_share']:>7}{row['evaluated_per_call_mean']:>11}"
            f"{row['seconds_per_call_median']:>12}{row['seconds_per_call_mean']:>13}"
        )
    print(
        f"identical stored memories in every run: {same}; cache: {len(cache_files)} files, "
        f"{cache_bytes / 1e6:.1f} MB"
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1), encoding="utf-8")
    print(f"written to {out}", file=sys.stderr)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
