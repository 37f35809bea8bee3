"""Search and import at scale on one Postgres memory (issue targets: at 100 k entries, the whole
``search()`` (hybrid pgvector + full text) p50 <= 15 ms, p95 <= 2x p50; add of one turn then
search <= 50 ms; import of 100 k entries with the same embedder >= 2,000 entries/s).

    python plugins/lightmem-postgres/benchmarks/search_scale.py --entries 100000

The entries: LoCoMo turns (``--data``) or generated sentences, spread over ``--users`` users,
written to an export file (vectors of the 384-dimension reference hash embedder, so no model
runs), then imported with ``import_memory`` into a memory whose record store, vectors and
full-text index are all on one Postgres (pgserver, or ``--dsn``): that is the import figure.
Then searches under one user each (distinct questions), and add-one-turn-then-search. The query
embedding (the hash embedder: microseconds) is inside the search times. Prints a table and
writes benchmarks/results/postgres_search_scale.json; ``--keep`` leaves nothing else behind.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import workload

RESULTS = Path("benchmarks/results")
WORDS = (
    "garden",
    "cat",
    "dog",
    "marathon",
    "cello",
    "nurse",
    "hospital",
    "painting",
    "sunset",
    "lake",
    "camping",
    "pottery",
    "school",
    "adoption",
    "support",
    "group",
    "friend",
    "sister",
    "brother",
    "coffee",
    "tea",
    "bread",
    "oslo",
    "lisbon",
    "paris",
    "berlin",
    "guitar",
    "piano",
    "violin",
    "book",
    "novel",
    "poem",
    "movie",
    "concert",
    "museum",
    "beach",
    "mountain",
    "river",
    "forest",
)


def texts(data: str | None, n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    base: list[str] = []
    if data:
        from lightmem_core.datasets import locomo_conversation

        for i, sample in enumerate(json.loads(Path(data).read_text(encoding="utf-8"))):
            base += [m["content"] for m in locomo_conversation(sample, where=str(i)).messages]
    out = []
    for i in range(n):
        head = base[i % len(base)] if base else ""
        extra = " ".join(rng.choice(WORDS) for _ in range(6))
        out.append(f"{head} ({extra} #{i})".strip())
    return out


def write_export(path: Path, mem, n: int, users: int, data: str | None) -> None:
    import numpy as np

    from lightmem_core.transfer import FORMAT, VERSION, fingerprint

    rt = mem._rt
    stamp = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    with open(path, "w", encoding="utf-8") as out:
        header = {
            "format": FORMAT,
            "version": VERSION,
            "embedder": fingerprint(rt.embedder, rt.config.speaker_vector_weight),
        }
        out.write(json.dumps(header) + "\n")
        all_texts = texts(data, n, 1)
        from lightmem_hookspecs import MemoryEntry, Scope

        for start in range(0, n, 2000):
            chunk = all_texts[start : start + 2000]
            entries = [
                MemoryEntry(
                    id=uuid.uuid5(uuid.NAMESPACE_OID, f"entry-{start + k}").hex,
                    memory=t,
                    source_message_ids=(f"m{start + k}",),
                    time_stamp=stamp + dt.timedelta(minutes=start + k),
                    speaker_name="Caroline" if (start + k) % 2 else "Melanie",
                    scope=Scope(user_id=f"user-{(start + k) % users}"),
                )
                for k, t in enumerate(chunk)
            ]
            vectors = np.asarray(rt.indexer._vectors(rt.embedder, entries), dtype="<f4")
            for e, v in zip(entries, vectors, strict=True):
                entry = {
                    "id": e.id,
                    "memory": e.memory,
                    "source_message_ids": list(e.source_message_ids),
                    "time_stamp": e.time_stamp.isoformat(),
                    "speaker_name": e.speaker_name,
                    "scope": e.scope.as_dict(),
                    "status": "active",
                }
                vector = base64.b64encode(v.tobytes()).decode()
                out.write(json.dumps({"type": "entry", "entry": entry, "vector": vector}) + "\n")
        out.write(json.dumps({"type": "end", "entries": n, "history": 0, "messages": 0}) + "\n")


def config(dsn: str, schema: str, memory_dir: str) -> dict:
    server = {"dsn": dsn, "schema": schema}
    return {
        "memory_dir": memory_dir,
        "text_embedder": {"model_name": "hash", "configs": {"dims": 384}},
        "retrieve_strategy": "hybrid",
        "record_store": {"model_name": "postgres", "configs": server},
        "embedding_retriever": {"model_name": "pgvector", "configs": server},
        "context_retriever": {"model_name": "postgres-fts", "configs": server},
    }


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(dsn: str, args: argparse.Namespace) -> dict:
    from lightmem_core import LightMemory
    from lightmem_core.transfer import import_memory

    folder = Path(tempfile.mkdtemp(prefix="lm-scale-"))
    cfg = config(dsn, f"scale_{uuid.uuid4().hex[:8]}", str(folder / "mem"))
    export = folder / "entries.jsonl"
    with LightMemory(cfg, host=workload.host()) as mem:
        t0 = time.perf_counter()
        write_export(export, mem, args.entries, args.users, args.data)
        made = time.perf_counter() - t0
        t0 = time.perf_counter()
        report = import_memory(mem, export)
        imported = time.perf_counter() - t0
        assert report.entries_added == args.entries and not report.reembedded
        rng = random.Random(7)
        questions = [
            f"{rng.choice(WORDS)} {rng.choice(WORDS)} {rng.choice(WORDS)} question {i}"
            for i in range(args.queries + 20)
        ]
        for q in questions[:20]:  # warm the pool and the caches
            mem.search(q, limit=10, user_id=f"user-{rng.randrange(args.users)}")
        latencies = []
        for q in questions[20:]:
            user = f"user-{rng.randrange(args.users)}"
            t0 = time.perf_counter()
            hits = mem.search(q, limit=10, user_id=user)
            latencies.append(1000 * (time.perf_counter() - t0))
            assert all(h.entry.scope.user_id == user for h in hits)
        add_then = []
        for i in range(args.adds):
            user = f"user-{i % args.users}"
            t0 = time.perf_counter()
            mem.add_memory(
                [{"role": "user", "content": f"I bought a red kayak number {i} for the lake"}],
                force_segment=True,
                force_extract=True,
                user_id=user,
            )
            hits = mem.search(f"red kayak number {i}", limit=10, user_id=user)
            add_then.append(1000 * (time.perf_counter() - t0))
            assert any(f"kayak number {i} " in h.entry.memory for h in hits)
        sizes = table_sizes(dsn, cfg["record_store"]["configs"]["schema"])
    export_mb = export.stat().st_size / 1e6
    shutil.rmtree(folder, ignore_errors=True)
    return {
        "entries": args.entries,
        "users": args.users,
        "export_file_mb": export_mb,
        "export_written_s": made,
        "import_s": imported,
        "import_entries_per_s": args.entries / imported,
        "search_ms_p50": statistics.median(latencies),
        "search_ms_p95": pct(latencies, 0.95),
        "search_ms_p99": pct(latencies, 0.99),
        "add_then_search_ms_p50": statistics.median(add_then),
        "add_then_search_ms_p95": pct(add_then, 0.95),
        "queries": len(latencies),
        "table_bytes": sizes,
        "load_average": os.getloadavg(),
    }


def table_sizes(dsn: str, schema: str) -> dict[str, int]:
    import psycopg

    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT c.relname, pg_total_relation_size(c.oid), pg_relation_size(c.oid) "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind IN ('r', 'i')",
            (schema,),
        ).fetchall()
    return {name: int(size) for name, _total, size in rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--adds", type=int, default=30)
    parser.add_argument("--data", help="a LoCoMo-format JSON file for the texts")
    parser.add_argument("--dsn", help="an external Postgres (default: a pgserver instance)")
    parser.add_argument("--out", default=str(RESULTS / "postgres_search_scale.json"))
    args = parser.parse_args()
    if args.dsn:
        result = run(args.dsn, args)
    else:
        from lightmem_postgres.server import dsn, temporary_server

        with temporary_server() as server:
            result = run(dsn(server), args)
    print(
        f"{result['entries']} entries: import {result['import_entries_per_s']:.0f} entries/s "
        f"({result['import_s']:.1f} s); search p50 {result['search_ms_p50']:.1f} ms p95 "
        f"{result['search_ms_p95']:.1f} ms; add one turn then search p50 "
        f"{result['add_then_search_ms_p50']:.1f} ms p95 {result['add_then_search_ms_p95']:.1f} ms"
    )
    for name, size in sorted(result["table_bytes"].items(), key=lambda kv: -kv[1])[:8]:
        print(f"  {name:<32} {size / 1e6:8.1f} MB ({size / result['entries']:.0f} B/entry)")
    print(f"load average {result['load_average']}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"shape": vars(args), **result}, indent=1), encoding="utf-8")
    print(f"written to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
