"""Wall time of quick `lightmem` commands, as a user runs them (a fresh process each time).

`lightmem search` on a memory of 1,000 entries (the embedded default: MiniLM, Qdrant, the
SQLite BM25 index), `lightmem plugins` and `lightmem config check`. With `--baseline DIR`
(another checkout of LightMem, e.g. a worktree of an earlier commit) the same commands run
with that checkout's packages first on PYTHONPATH, interleaved with this one's, so both meet
the same machine load. Prints medians and writes JSON under benchmarks/results/.

    python benchmarks/cli_commands.py --runs 7
    git worktree add /tmp/lightmem-before HEAD~1
    nice python benchmarks/cli_commands.py --runs 7 --baseline /tmp/lightmem-before
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUERY = "which city does friend 123 live in?"


def build_memory(folder: Path, size: int) -> None:
    """``size`` one-fact messages of one user, stored as they are (no LLM)."""
    from lightmem_core import LightMemory

    messages = [
        {
            "role": "user",
            "content": f"My friend {i} lives in city {i % 97} and likes the colour {i % 13}",
            "time_stamp": f"2024-03-{1 + i % 28:02d}T09:{i % 60:02d}",
        }
        for i in range(size)
    ]
    with LightMemory(memory_dir=str(folder)) as memory:
        memory.add(messages, user_id="u")
        assert memory.stats()["entries"]["active"] == size


def source_path(checkout: Path) -> str:
    """PYTHONPATH that imports every LightMem package from ``checkout``."""
    folders = [checkout, checkout / "hookspecs", *sorted((checkout / "libs").glob("*"))]
    folders += sorted((checkout / "plugins").glob("*"))
    return os.pathsep.join(str(f) for f in folders if f.is_dir())


def timed(command: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one run of ``command``.

    On a busy machine the wall time is mostly waiting for a core; the CPU time is the work.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, env=env, cwd=cwd, check=True, capture_output=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--size", type=int, default=1000, help="entries in the memory")
    parser.add_argument("--memory-dir", default=None, help="reuse (or build) this memory")
    parser.add_argument("--baseline", default=None, help="another LightMem checkout to compare")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/cli_commands.json"))
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="lightmem-cli-"))
    memory = Path(args.memory_dir) if args.memory_dir else scratch / "memory"
    if not (memory / "history.db").is_file():
        print(f"building a memory of {args.size} entries in {memory} ...", flush=True)
        build_memory(memory, args.size)
    config = scratch / "config.json"
    config.write_text(json.dumps({"retrieve_strategy": "hybrid", "memory_dir": str(memory)}))
    lightmem = [sys.executable, "-m", "lightmem_core.cli"]
    commands = {
        "search": [*lightmem, "search", QUERY, "--memory-dir", str(memory), "--user-id", "u"],
        "plugins": [*lightmem, "plugins"],
        "config check": [*lightmem, "config", "check", str(config)],
    }
    checkouts = {"this": ROOT}
    if args.baseline:
        checkouts = {"baseline": Path(args.baseline).resolve(), "this": ROOT}
    envs = {
        name: {**os.environ, "PYTHONPATH": source_path(path), "HF_HUB_OFFLINE": "1"}
        for name, path in checkouts.items()
    }
    times: dict[str, dict[str, list[float]]] = {n: {c: [] for c in commands} for n in checkouts}
    cpu: dict[str, dict[str, list[float]]] = {n: {c: [] for c in commands} for n in checkouts}
    for _ in range(args.runs):
        for command, argv in commands.items():
            for name in checkouts:  # interleaved: both meet the same load
                wall, used = timed(argv, envs[name], scratch)
                times[name][command].append(wall)
                cpu[name][command].append(used)

    result: dict[str, object] = {"runs": args.runs, "entries": args.size, "checkouts": {}}
    for name, path in checkouts.items():
        summary = {
            command: {
                "median_s": statistics.median(values),
                "min_s": min(values),
                "max_s": max(values),
                "cpu_median_s": statistics.median(cpu[name][command]),
            }
            for command, values in times[name].items()
        }
        result["checkouts"][name] = {"path": str(path), **summary}  # type: ignore[index]
        for command, s in summary.items():
            print(
                f"{name:>8}  {command:<13} median {s['median_s']:.2f} s "
                f"(min {s['min_s']:.2f}, max {s['max_s']:.2f}) over {args.runs} runs; "
                f"CPU median {s['cpu_median_s']:.2f} s"
            )
    if args.baseline:
        for command in commands:
            before = statistics.median(times["baseline"][command])
            after = statistics.median(times["this"][command])
            used = statistics.median(cpu["this"][command])
            used_before = statistics.median(cpu["baseline"][command])
            print(
                f"{command:<13} {after / before:.2f} x the baseline's median wall time, "
                f"{used / used_before:.2f} x its CPU time"
            )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
