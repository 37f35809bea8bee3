"""Ingest throughput of the embedded default (no LLM) against MiniLM encoding the same turns alone.

For each round, in the same process and on the same loaded model: (1) encode the turns' texts
with the model alone (sentence-transformers' ``encode`` with its defaults), in one call per
session; (2) the same, all turns in ONE call (its best case: longest batches, least padding);
(2b) all turns in one call through LightMem's embedder backend (which batches by token length);
(3) through the backend, the texts the pipeline really embeds (each turn,
``indexing.embedded_text``, and each speaker's name once) in one call; (4) ingest the same turns
into a fresh LightMemory (default config, temporary directory) session by session with
``add_memory(session, force_segment=True, force_extract=True)`` and ``close()`` (which writes
the vectors still queued, see ``vector_batch_texts``). Rounds alternate so machine load hits
all alike; the best round of each is compared. The target is pipeline / (2) >= 0.9; (2b) and
(3) say what the pipeline costs beyond its own embedder's work. A backend without a
sentence-transformers model is its own reference in (1) and (2).

A profile of one pipeline pass says where time goes beyond the encoder: the vector upsert,
the BM25 index, the record store (SQLite), normalization and the rest.

    python benchmarks/ingest_throughput.py --data /path/to/locomo10.json [--samples conv-26]

The LoCoMo data (CC BY-NC 4.0) is not part of this repository; point ``--data`` at a copy.
Needs the embedded default plugins (lightmem-huggingface, lightmem-qdrant, lightmem-bm25).
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import json
import os
import platform
import pstats
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from _timing import time_calls

RESULTS = Path("benchmarks/results")
#: What the runs are timed with: wall time, or (``--clock cpu``) this process's CPU time, which
#: a busy machine inflates far less (use it with ``--threads 1``: idle threads spin).
clock = time.perf_counter


class ModelAlone:
    """The backend's sentence-transformers model called directly, with its defaults."""

    def __init__(self, backend: Any) -> None:
        self.model = getattr(backend, "_model", None)
        self.backend = backend

    def embed(self, texts: list[str]) -> Any:
        if self.model is None:
            return self.backend.embed(texts)
        return self.model.encode(
            texts, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False
        )


def encode_alone(embedder: Any, sessions: list[list[dict]], *, one_call: bool = False) -> float:
    """Seconds to encode every turn's content with the embedder backend alone.

    A session per call (as the pipeline embeds: one batch per flush), or all turns in one call
    (the model's best case: longest batches, least padding).
    """
    texts = [[m["content"] for m in session] for session in sessions]
    return encode_texts(embedder, texts, one_call=one_call)


def indexed_texts(sessions: list[list[dict]]) -> list[list[str]]:
    """The texts the pipeline embeds for these turns: each turn, and each speaker's name once
    (its vector is added to the turn's, see ``indexing.with_speakers``)."""
    from lightmem_hookspecs import Scope

    from lightmem_core.indexing import embedded_text, speaker_of
    from lightmem_core.messages import normalize_messages
    from lightmem_core.pipeline.ingest import entry_from_message

    entries = [
        [entry_from_message(m, 0) for m in normalize_messages(session, Scope())]
        for session in sessions
    ]
    names = dict.fromkeys(speaker_of(e) for session in entries for e in session)
    texts = [[embedded_text(e) for e in session] for session in entries]
    return [*texts, [n for n in names if n]]


def encode_texts(embedder: Any, texts: list[list[str]], *, one_call: bool = False) -> float:
    """Seconds to encode ``texts`` (a list per call, or all of them in one call)."""
    if one_call:
        texts = [[t for session in texts for t in session]]
    started = clock()
    for batch in texts:
        embedder.embed(batch)
    return clock() - started


def token_counts(
    embedder: Any, sessions: list[list[dict]], indexed: list[list[str]]
) -> tuple[int, int] | None:
    """Model tokens of the turns and of the texts the pipeline embeds (None: no tokenizer)."""
    tokenizer = getattr(getattr(embedder, "_model", None), "tokenizer", None)
    if tokenizer is None:
        return None
    raw = [m["content"] for session in sessions for m in session]
    flat = [t for session in indexed for t in session]
    return (
        sum(len(ids) for ids in tokenizer(raw)["input_ids"]),
        sum(len(ids) for ids in tokenizer(flat)["input_ids"]),
    )


def ingest(
    config: dict, sessions: list[list[dict]], timers: dict | None = None, timer: Any = None
) -> float:
    """Seconds to ingest ``sessions`` into a fresh memory (model loaded before the clock)."""
    timer = timer or clock
    from lightmem_core import LightMemory

    with tempfile.TemporaryDirectory(prefix="lightmem-ingest-") as tmp:
        memory = LightMemory({**config, "memory_dir": tmp})
        closed = False
        try:
            memory.embedder.backend.embed(["warm-up"])
            if timers is not None:
                instrument(memory, timers)
            started = timer()
            for session in sessions:
                memory.add_memory(session, force_segment=True, force_extract=True)
            memory.close()  # writes the vectors still queued: every turn is indexed
            closed = True
            return timer() - started
        finally:
            if not closed:
                memory.close()


def instrument(memory: Any, timers: dict) -> None:
    """Accumulate wall time of the stages worth knowing about into ``timers``."""

    time_calls(memory.embedder.backend, "embed", "embedder (model)", timers)
    time_calls(memory.vector_index, "upsert", "vector upsert", timers)
    time_calls(memory.text_index, "index", "bm25 index", timers)
    for method in (
        "add_messages",
        "messages_by_id",
        "journal",
        "assign_segments",
        "claim_batch",
        "batches",
        "create_batch",
        "batch_messages",
        "complete_batch",
        "mark_indexed",
        "pending_batches",
        "add_usage",
        "count_entries",
        "entries",
        "next_topic_ids",
    ):
        time_calls(memory.store, method, "record store (sqlite)", timers)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a LoCoMo-format JSON file")
    parser.add_argument("--samples", help="comma-separated sample ids (default: all)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of each")
    parser.add_argument("--config", help="LightMem configuration file (default: embedded default)")
    parser.add_argument("--profile", type=int, default=25, help="profile lines to print (0: off)")
    parser.add_argument(
        "--threads", type=int, help="torch threads for every run (default: torch's)"
    )
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="time runs by wall clock or by this process's CPU time (steadier on a busy machine)",
    )
    parser.add_argument("--out", default=str(RESULTS / "ingest_throughput.json"))
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    global clock
    if args.clock == "cpu":
        clock = time.process_time
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    from lightmem_core import LightMemory
    from lightmem_core.config import load_config_file
    from lightmem_core.datasets import load_conversations

    samples = args.samples.split(",") if args.samples else None
    conversations = load_conversations(args.data, samples=samples)
    sessions = [list(s.messages) for c in conversations for s in c.sessions]
    turns = sum(len(s) for s in sessions)
    config = load_config_file(args.config) if args.config else {}
    if config.get("memory_manager"):
        print("note: a memory_manager is configured; this measures ingestion WITH the LLM")

    with tempfile.TemporaryDirectory() as tmp:
        probe = LightMemory({**config, "memory_dir": tmp})
        embedder = probe.embedder.backend
        model_name = probe.embedder.model_name
        embedder.embed(["warm-up"])
        alone = ModelAlone(embedder)
        indexed = indexed_texts(sessions)
        encode_runs, one_call_runs, indexed_runs, ingest_runs = [], [], [], []
        backend_runs: list[float] = []
        for r in range(args.rounds):
            encode_runs.append(encode_alone(alone, sessions))
            one_call_runs.append(encode_alone(alone, sessions, one_call=True))
            backend_runs.append(encode_alone(embedder, sessions, one_call=True))
            indexed_runs.append(encode_texts(embedder, indexed, one_call=True))
            ingest_runs.append(ingest(config, sessions))
            print(
                f"round {r + 1}: model alone {turns / encode_runs[-1]:.1f} turns/s "
                f"(one call: {turns / one_call_runs[-1]:.1f}; the backend in one call: "
                f"{turns / backend_runs[-1]:.1f}, on the indexed texts: "
                f"{turns / indexed_runs[-1]:.1f}), pipeline {turns / ingest_runs[-1]:.1f} turns/s",
                file=sys.stderr,
            )
        tokens = token_counts(embedder, sessions, indexed)
        probe.close()

    timers: dict[str, float] = defaultdict(float)
    profiler = cProfile.Profile() if args.profile else None
    if profiler:
        profiler.enable()
    profiled = ingest(config, sessions, timers, timer=time.perf_counter)  # stages: wall time
    if profiler:
        profiler.disable()
    timers["other (normalization, buffers, hooks, python)"] = max(
        0.0, profiled - sum(timers.values())
    )

    encoder_tps = turns / min(encode_runs)
    one_call_tps = turns / min(one_call_runs)
    backend_tps = turns / min(backend_runs)
    indexed_tps = turns / min(indexed_runs)
    pipeline_tps = turns / min(ingest_runs)
    ratio = pipeline_tps / encoder_tps
    print(f"\n{turns} turns in {len(sessions)} sessions, {len(conversations)} conversation(s)")
    print(f"model alone, a session per call:       {encoder_tps:6.1f} turns/s ({model_name})")
    print(f"model alone, all turns in one call:    {one_call_tps:6.1f} turns/s")
    print(f"embedder backend, all turns in one call: {backend_tps:4.1f} turns/s")
    print(f"embedder backend, indexed texts, one call: {indexed_tps:.1f} turns/s")
    print(f"LightMem ingest, no LLM (to close): {pipeline_tps:7.1f} turns/s")
    print(f"(best of {args.rounds} alternating rounds each, {args.clock} clock)")
    if tokens:
        print(
            f"model tokens: turns {tokens[0]}, indexed texts {tokens[1]} "
            f"({tokens[1] / tokens[0]:.2f}x: the speakers' names added)"
        )
    print(
        f"ratio: {ratio:.2f} (a session per call); against one call: "
        f"{pipeline_tps / one_call_tps:.2f} (target >= 0.9); against the backend in one call: "
        f"{pipeline_tps / backend_tps:.2f}, on the indexed texts: {pipeline_tps / indexed_tps:.2f}"
    )
    print(f"\nwhere the time of one (instrumented) pipeline pass goes ({profiled:.2f} s):")
    for label, seconds in sorted(timers.items(), key=lambda kv: -kv[1]):
        print(f"  {label:<48} {seconds:7.2f} s  {100 * seconds / profiled:5.1f} %")
    if profiler:
        print(f"\ntop {args.profile} functions by cumulative time:")
        stats = pstats.Stats(profiler, stream=sys.stdout)
        stats.sort_stats("cumulative").print_stats(args.profile)

    result = {
        "benchmark": "ingest_throughput",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "data": args.data,
        "samples": samples,
        "turns": turns,
        "sessions": len(sessions),
        "model": model_name,
        "encoder_turns_per_s": encoder_tps,
        "encoder_one_call_turns_per_s": one_call_tps,
        "ratio_to_one_call": pipeline_tps / one_call_tps,
        "backend_one_call_turns_per_s": backend_tps,
        "ratio_to_backend_one_call": pipeline_tps / backend_tps,
        "backend_one_call_runs_s": backend_runs,
        "encoder_indexed_one_call_turns_per_s": indexed_tps,
        "ratio_to_indexed_one_call": pipeline_tps / indexed_tps,
        "model_tokens": {"turns": tokens[0], "indexed_texts": tokens[1]} if tokens else None,
        "encoder_indexed_one_call_runs_s": indexed_runs,
        "pipeline_turns_per_s": pipeline_tps,
        "ratio": ratio,
        "encoder_runs_s": encode_runs,
        "encoder_one_call_runs_s": one_call_runs,
        "pipeline_runs_s": ingest_runs,
        "breakdown_s": dict(timers),
        "clock": args.clock,
        "threads": args.threads,
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
        "python": platform.python_version(),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1), encoding="utf-8")
    print(f"\nwritten to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
