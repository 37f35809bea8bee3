"""The dry run against the run it predicts, on LoCoMo conversations: LLM calls and prompt tokens
of ``LightMemory.plan()`` beside what ingestion then spends, and the plan's wall time.

    nice python benchmarks/dry_run.py --data /work/shared/data/locomo/locomo-dev.json \
        --samples conv-26

Each conversation is planned, then ingested, one ``add_memory`` per session (``force_segment``;
the last session ``force_extract``), in a fresh memory per setting: without a topic segmenter,
and with the built-in ``embedding`` segmenter (``--stages`` picks). The backends are the testing
kit's reference ones (a hashing embedder, exact vector search, a keyword index: no model to
download) and the scripted memory manager answering as ``ScriptedResponder`` does; tokens are
counted as the LLM layer counts them. Prints a table; writes benchmarks/results/dry_run.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = {
    "none": {},
    "segmenter": {"topic_segment": True, "topic_segmenter": {"model_name": "embedding"}},
}


def run(conversation, stages: str, workdir: Path) -> dict:
    from lightmem_hookspecs import Scope

    from lightmem_core import LightMemory
    from lightmem_core.eval.economy import ScriptedResponder
    from lightmem_core.testing import fresh_host
    from lightmem_core.testing.reference import ReferencePlugin, reference_config
    from lightmem_core.testing.scripted import ScriptedMemoryManager

    llm = ScriptedMemoryManager(max_tokens=16000)
    llm.responder = ScriptedResponder()
    host = fresh_host(ReferencePlugin(memory_manager=llm))
    config = {
        **reference_config(workdir / f"{conversation.sample_id}-{stages}"),
        **STAGES[stages],
        "memory_manager": {"model_name": "scripted"},
        "background_retry": False,
    }
    sessions = [list(s.messages) for s in conversation.sessions]
    flags = [{"force_segment": True} for _ in sessions]
    flags[-1] = {"force_extract": True}
    with LightMemory(config, host=host) as mem:
        plan = mem.plan()
        started = time.perf_counter()
        for messages, flag in zip(sessions, flags, strict=True):
            estimate = plan.add_memory(
                messages,
                Scope(),
                force_segment=flag.get("force_segment", False),
                force_extract=flag.get("force_extract", False),
            )
        plan_s = time.perf_counter() - started
        started = time.perf_counter()
        for messages, flag in zip(sessions, flags, strict=True):
            mem.add_memory(messages, **flag)
        ingest_s = time.perf_counter() - started
        spent = mem.get_token_statistics()["by_operation"].get("extract", {})
    return {
        "sample": conversation.sample_id,
        "stages": stages,
        "messages": sum(len(s) for s in sessions),
        "plan_calls": estimate.llm_calls,
        "run_calls": spent.get("llm_calls", 0),
        "plan_prompt_tokens": estimate.prompt_tokens,
        "run_prompt_tokens": spent.get("prompt_tokens", 0),
        "plan_s": round(plan_s, 3),
        "ingest_s": round(ingest_s, 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="a LoCoMo JSON file")
    parser.add_argument("--samples", nargs="*", default=None, help="sample ids (default: all)")
    parser.add_argument("--stages", nargs="*", default=sorted(STAGES), choices=sorted(STAGES))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "dry_run.json"))
    args = parser.parse_args(argv)

    from lightmem_core.datasets import load_conversations

    conversations = load_conversations(args.data, samples=args.samples)
    workdir = Path(tempfile.mkdtemp(prefix="lightmem-dry-run-"))
    rows = []
    try:
        for conversation in conversations:
            for stages in args.stages:
                rows.append(run(conversation, stages, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    head = f"{'sample':<8} {'stages':<10} {'msgs':>5} {'calls plan/run':>15} "
    print(head + f"{'prompt tokens plan/run':>24} {'diff':>7} {'plan s':>7} {'ingest s':>9}")
    for r in rows:
        diff = r["plan_prompt_tokens"] - r["run_prompt_tokens"]
        share = diff / r["run_prompt_tokens"] if r["run_prompt_tokens"] else 0.0
        print(
            f"{r['sample']:<8} {r['stages']:<10} {r['messages']:>5} "
            f"{r['plan_calls']:>7}/{r['run_calls']:<7} "
            f"{r['plan_prompt_tokens']:>11}/{r['run_prompt_tokens']:<12} {share:>+7.1%} "
            f"{r['plan_s']:>7.2f} {r['ingest_s']:>9.2f}"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": rows}, indent=1), encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
