"""Correctness and throughput under load on one Postgres memory (issue target: 4 writer
processes x 2 threads adding LoCoMo conversations through a scripted LLM answering after 200 ms,
while 2 more processes search: 0 lost, 0 duplicated, 0 cross-scope; throughput with 4 writer
processes >= 3x one writer process, same run).

    python plugins/lightmem-postgres/benchmarks/load.py --data /path/to/locomo-dev.json

Phase 1: one writer process (2 threads); phase 2: 4 writer processes (2 threads each) and 2
searcher processes; each thread adds ``--sessions`` sessions of its own LoCoMo sample under its
own user. Before the timing each thread adds one two-turn conversation under a user of its
own, so what a worker process does once in its life (imports, the tokenizer's tables, opening
the indexes) is not timed (``--cold``: it is). Both phases on one fresh Postgres (pgserver, or
``--dsn``), each in its own schema. Prints a table and writes
benchmarks/results/postgres_load.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import workload

RESULTS = Path("benchmarks/results")


def phase(dsn: str, llm_url: str, args: argparse.Namespace, processes: int, searchers: int):
    from lightmem_core import LightMemory

    schema = f"load_{uuid.uuid4().hex[:8]}"
    folder = tempfile.mkdtemp(prefix="lm-load-")  # stays empty: everything is in Postgres
    config = workload.memory_config(dsn, schema, llm_url, folder)
    result = workload.run(
        config,
        args.data,
        processes=processes,
        threads=args.threads,
        n_sessions=args.sessions,
        searchers=searchers,
        tag=f"w{processes}",
        search_rate=args.search_rate,
        warm=not args.cold,
    )
    with LightMemory(config, host=workload.host()) as mem:
        result["verify"] = workload.verify(mem.store, result["sent"])
    shutil.rmtree(folder, ignore_errors=True)
    lat = sorted(result.pop("search_latencies"))
    if lat:
        result["search_ms_p50"] = 1000 * statistics.median(lat)
        result["search_ms_p95"] = 1000 * lat[int(0.95 * (len(lat) - 1))]
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a LoCoMo-format JSON file")
    parser.add_argument("--dsn", help="an external Postgres (default: a pgserver instance)")
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--searchers", type=int, default=2)
    parser.add_argument("--sessions", type=int, default=4, help="sessions per thread")
    parser.add_argument("--latency", type=float, default=0.2, help="LLM answer delay, seconds")
    parser.add_argument(
        "--search-rate",
        type=float,
        default=10.0,
        help="searches a second per searcher process (0: as fast as it can)",
    )
    parser.add_argument(
        "--cold",
        action="store_true",
        help="no warm-up conversation per writer: its one-time costs inside the timing",
    )
    parser.add_argument("--out", default=str(RESULTS / "postgres_load.json"))
    args = parser.parse_args()
    from lightmem_postgres.server import dsn as server_dsn
    from lightmem_postgres.server import temporary_server

    from lightmem_core.testing.openai_server import OpenAICompatibleServer

    with OpenAICompatibleServer(responder=workload.delayed_responder(args.latency)) as llm:
        if args.dsn:
            one = phase(args.dsn, llm.base_url, args, 1, 0)
            many = phase(args.dsn, llm.base_url, args, args.writers, args.searchers)
        else:
            with temporary_server() as server:
                dsn = server_dsn(server)
                one = phase(dsn, llm.base_url, args, 1, 0)
                many = phase(dsn, llm.base_url, args, args.writers, args.searchers)
    speedup = many["turns_per_s"] / one["turns_per_s"] if one["turns_per_s"] else 0.0
    report = {
        "shape": vars(args),
        "one_writer": one,
        "many_writers": many,
        "speedup": speedup,
        "cpus": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
    }
    for name, r in (("1 writer process", one), (f"{args.writers} writer processes", many)):
        v = r["verify"]
        cross = v["cross_scope"] + r["crossed"]
        print(
            f"{name:<22} {r['turns']:>5} turns {r['seconds']:>7.1f} s {r['turns_per_s']:>7.1f} "
            f"turns/s  lost {v['lost']} dup {v['duplicated']} cross {cross}"
            f" unextracted {v['unextracted']}  searches {r['searches']}"
            + (
                f" p50 {r['search_ms_p50']:.1f} ms p95 {r['search_ms_p95']:.1f} ms"
                if r["searches"]
                else ""
            )
        )
    for name, r in (("1 writer process", one), (f"{args.writers} writer processes", many)):
        turns = max(r["turns"], 1)
        print(
            f"{name:<22} CPU per turn: writers {1000 * r['writer_cpu_s'] / turns:.1f} ms, "
            f"Postgres {1000 * r['server_cpu_s'] / turns:.1f} ms, scripted model's server "
            f"{1000 * r['llm_server_cpu_s'] / turns:.1f} ms; warm-up (untimed) "
            f"{1000 * r['writer_warm_cpu_s'] / r['processes']:.0f} ms a writer process"
        )
    print(f"speedup {speedup:.2f}x (target >= 3x); load average {os.getloadavg()}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")
    print(f"written to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
