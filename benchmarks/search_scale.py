"""The whole retrieval at scale: ``search()`` through the public API at 10 k / 100 k entries.

Fills a memory directory through ``add_memory`` (no LLM: every turn becomes an entry) with N
LoCoMo-like entries: the dev split's turns cycled, each copy under its own speakers, dates and
a numbered suffix, so texts repeat the LoCoMo vocabulary without being duplicates. Then, with
the default hybrid chain (vector + lexical, rank fusion), it reports:

- p50 / p95 of the whole ``search()`` and of each stage: query embedding, vector search,
  lexical search, entry fetch from the record store, and the rest (fusion, filters, hooks);
- the same with a competing CPU-bound process (one busy core) running;
- the add -> search cycle: ``add_memory`` of one turn, then a search (an agent's loop);
- reopening the directory (no index rebuild: time to the first search);
- resident memory (RSS) of the process per 100 k entries.

``--embedder hash`` (the default) uses the core's reference hashing embedder, so no model time
is counted; ``--embedder minilm`` uses the bundled all-MiniLM-L6-v2 (the fill then takes a
while: the encoder runs for every entry). Prints a table and writes
``benchmarks/results/search_scale[_<embedder>].json``.

    python benchmarks/search_scale.py --data /path/to/locomo10.json --sizes 10000,100000
    python benchmarks/search_scale.py --data locomo10.json --sizes 100000 --embedder minilm
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import os
import platform
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from _timing import percentile, time_calls

RESULTS = Path("benchmarks/results")
STAGES = ("embed", "vector", "lexical", "fetch")
NAMES = ("Ana", "Ben", "Caro", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jun")


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def busy(stop: Any) -> None:
    """A CPU-bound competitor: keeps one core busy until told to stop."""
    x = 0
    while not stop.is_set():
        for i in range(100_000):
            x = (x * 31 + i) % 1_000_003


def load_turns(path: Path) -> tuple[list[tuple[str, str]], list[str]]:
    samples = json.loads(path.read_text(encoding="utf-8"))
    turns = [
        (turn["speaker"], turn["text"])
        for sample in samples
        for key, session in sample["conversation"].items()
        if key.startswith("session_") and isinstance(session, list)
        for turn in session
        if turn.get("text")
    ]
    questions = [str(q["question"]) for sample in samples for q in sample["qa"]]
    return turns, list(dict.fromkeys(questions))  # each once (see run_size)


def message(turns: list[tuple[str, str]], i: int) -> dict[str, Any]:
    """The i-th LoCoMo-like message: a LoCoMo turn under a copy-specific speaker and date."""
    speaker, text = turns[i % len(turns)]
    copy = i // len(turns)
    name = f"{speaker}{NAMES[copy % len(NAMES)]}" if copy else speaker
    when = dt.datetime(2023, 1, 1) + dt.timedelta(minutes=7 * i)
    return {
        "role": "user",
        "content": f"{text} ({copy})" if copy else text,
        "speaker_name": name,
        "time_stamp": when.isoformat(),
    }


def config_for(embedder: str, memory_dir: str) -> dict[str, Any]:
    config: dict[str, Any] = {"memory_dir": memory_dir, "retrieve_strategy": "hybrid"}
    if embedder == "hash":
        config["text_embedder"] = {"model_name": "hash", "configs": {"dims": 384}}
    return config


def open_memory(embedder: str, memory_dir: str) -> Any:
    from lightmem_core import LightMemory
    from lightmem_core.plugins import PluginHost
    from lightmem_core.testing.reference import ReferencePlugin

    host = PluginHost()
    if embedder == "hash":
        host.register(ReferencePlugin(), "reference")
    return LightMemory(config_for(embedder, memory_dir), host=host)


def instrument(memory: Any, timers: dict[str, float]) -> None:
    """Add each stage's wall time of the current search to ``timers``."""

    time_calls(memory.embedder.backend, "embed", "embed", timers)
    time_calls(memory.vector_index, "search", "vector", timers)
    time_calls(memory.text_index, "search", "lexical", timers)
    time_calls(memory.store, "entries", "fetch", timers)


def measure_searches(memory: Any, questions: list[str], limit: int) -> dict[str, Any]:
    timers: dict[str, float] = defaultdict(float)
    instrument(memory, timers)
    rows: list[dict[str, float]] = []
    for question in questions:
        timers.clear()
        started = time.perf_counter()
        memory.search(question, limit=limit)
        total = time.perf_counter() - started
        row = {stage: timers.get(stage, 0.0) * 1000 for stage in STAGES}
        row["total"] = total * 1000
        row["total_without_embed"] = row["total"] - row["embed"]
        row["fusion_and_rest"] = row["total"] - sum(row[s] for s in STAGES)
        rows.append(row)
    out: dict[str, Any] = {}
    for key in ("total", "total_without_embed", *STAGES, "fusion_and_rest"):
        values = [r[key] for r in rows]
        out[key] = {
            "p50": round(percentile(values, 0.5), 2),
            "p95": round(percentile(values, 0.95), 2),
        }
    return out


def fill(memory: Any, turns: list[tuple[str, str]], size: int, chunk: int) -> float:
    started = time.perf_counter()
    for lo in range(0, size, chunk):
        batch = [message(turns, i) for i in range(lo, min(size, lo + chunk))]
        memory.add_memory(batch, force_segment=True, force_extract=True)
        if lo and lo % (chunk * 20) == 0:
            rate = lo / (time.perf_counter() - started)
            print(f"  filled {lo} entries ({rate:.0f}/s)", flush=True)
    return time.perf_counter() - started


def run_size(args: Any, size: int, turns: list, questions: list[str]) -> dict[str, Any]:
    memory_dir = tempfile.mkdtemp(prefix=f"lightmem-scale-{size}-", dir=args.tmp)
    try:
        rss_before = rss_mb()
        memory = open_memory(args.embedder, memory_dir)
        memory.embedder.backend.embed(["warm-up"])
        rss_model = rss_mb()
        fill_s = fill(memory, turns, size, args.chunk)
        entries = memory.stats().get("entries", size) if hasattr(memory, "stats") else size
        memory.search("warm up the indexes", limit=10)
        # Distinct questions for each part: the embedder remembers the vectors of texts it
        # encoded lately, so a repeated question would not be embedded again.
        n = args.queries
        if len(questions) < 2 * n + args.cycles:
            raise SystemExit(f"--data has {len(questions)} questions; {2 * n + args.cycles} needed")
        idle = measure_searches(memory, questions[:n], args.limit)
        stop = multiprocessing.Event()
        competitor = multiprocessing.Process(target=busy, args=(stop,), daemon=True)
        competitor.start()
        try:
            time.sleep(0.5)
            loaded = measure_searches(memory, questions[n : 2 * n], args.limit)
        finally:
            stop.set()
            competitor.join(5)
        cycles = []
        for k in range(args.cycles):
            msg = message(turns, size + k)
            started = time.perf_counter()
            memory.add_memory([msg], force_segment=True, force_extract=True)
            memory.search(questions[2 * n + k], limit=args.limit)
            cycles.append((time.perf_counter() - started) * 1000)
        rss_full = rss_mb()
        memory.close()
        started = time.perf_counter()
        reopened = open_memory(args.embedder, memory_dir)
        reopened.search(questions[0], limit=args.limit)
        reopen_ms = (time.perf_counter() - started) * 1000
        reopened.close()
        return {
            "entries": entries,
            "fill_s": round(fill_s, 1),
            "fill_entries_per_s": round(size / fill_s, 1),
            "search_idle_ms": idle,
            "search_with_competing_process_ms": loaded,
            "add_then_search_ms": {
                "p50": round(percentile(cycles, 0.5), 1),
                "p95": round(percentile(cycles, 0.95), 1),
            },
            "reopen_and_first_search_ms": round(reopen_ms, 1),
            "rss_mb": {
                "before": round(rss_before, 1),
                "after_model_load": round(rss_model, 1),
                "after_fill_and_searches": round(rss_full, 1),
                "per_100k_entries": round((rss_full - rss_model) * 100_000 / size, 1),
            },
            "disk_mb": round(
                sum(p.stat().st_size for p in Path(memory_dir).rglob("*") if p.is_file()) / 1e6,
                1,
            ),
        }
    finally:
        shutil.rmtree(memory_dir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, type=Path, help="a LoCoMo-format JSON file")
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--embedder", choices=("hash", "minilm"), default="hash")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--limit", type=int, default=10)
    parser.add_argument("--cycles", type=int, default=50)
    parser.add_argument("--chunk", type=int, default=500, help="messages per add_memory call")
    parser.add_argument("--tmp", help="where the memory directories go (default: system tmp)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    turns, questions = load_turns(args.data)
    results: dict[str, Any] = {
        "embedder": args.embedder,
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "sizes": {},
    }
    for size in [int(s) for s in args.sizes.split(",")]:
        print(f"{size} entries, embedder {args.embedder}:", flush=True)
        res = results["sizes"][str(size)] = run_size(args, size, turns, questions)
        idle, loaded = res["search_idle_ms"], res["search_with_competing_process_ms"]
        for label, block in (("idle", idle), ("competing process", loaded)):
            stages = ", ".join(f"{k} {block[k]['p50']}" for k in (*STAGES, "fusion_and_rest"))
            print(
                f"  search ({label}): p50 {block['total']['p50']} ms, p95 "
                f"{block['total']['p95']} ms; without the embedding p50 "
                f"{block['total_without_embed']['p50']} ms, p95 "
                f"{block['total_without_embed']['p95']} ms; stage p50: {stages}"
            )
        print(
            f"  add->search p50 {res['add_then_search_ms']['p50']} ms, p95 "
            f"{res['add_then_search_ms']['p95']} ms; reopen + first search "
            f"{res['reopen_and_first_search_ms']} ms; fill {res['fill_entries_per_s']}/s; RSS "
            f"{res['rss_mb']['per_100k_entries']} MB per 100k entries; disk {res['disk_mb']} MB",
            flush=True,
        )
    suffix = "" if args.embedder == "hash" else f"_{args.embedder}"
    out = args.out or RESULTS / f"search_scale{suffix}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
