"""LoCoMo dev recall@10 of a Postgres deployment beside the embedded default, same embedder
(issue target: within 0.01).

    python plugins/lightmem-postgres/benchmarks/locomo_postgres.py --data locomo-dev.json

Both run the ``lightmem eval locomo`` harness with the default pipeline (MiniLM, no LLM); the
Postgres run replaces the record store, the vector store and the lexical index by ``postgres``,
``pgvector`` and ``postgres-fts`` on one pgserver (or ``--dsn``), one schema per conversation.
Prints recall@10 per conversation and over all questions; writes
benchmarks/results/postgres_locomo.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

RESULTS = Path("benchmarks/results")


def postgres_config(dsn: str, schema: str) -> dict:
    server = {"dsn": dsn, "schema": schema}
    return {
        "record_store": {"model_name": "postgres", "configs": server},
        "embedding_retriever": {"model_name": "pgvector", "configs": server},
        "context_retriever": {"model_name": "postgres-fts", "configs": server},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--samples", help="comma-separated sample ids (default: all)")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--dsn")
    parser.add_argument("--out", default=str(RESULTS / "postgres_locomo.json"))
    args = parser.parse_args()
    samples = json.loads(Path(args.data).read_text(encoding="utf-8"))
    ids = args.samples.split(",") if args.samples else [s["sample_id"] for s in samples]
    if args.dsn:
        result = run(args, ids, args.dsn)
    else:
        from lightmem_postgres.server import dsn, temporary_server

        with temporary_server() as server:
            result = run(args, ids, dsn(server))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1), encoding="utf-8")
    print(f"written to {out}", file=sys.stderr)
    return 0


def run(args: argparse.Namespace, ids: list[str], dsn: str) -> dict:
    from lightmem_core.eval.locomo import LocomoOptions, evaluate_locomo

    key = f"recall@{args.k}"
    rows: dict[str, dict] = {}
    for sample in ids:
        row = {}
        for name, config in (
            ("default", None),
            ("postgres", postgres_config(dsn, f"locomo_{sample.replace('-', '_')}")),
        ):
            options = LocomoOptions(
                data=args.data, samples=(sample,), k=args.k, config=config, baselines=False
            )
            report = evaluate_locomo(options)
            system = report["systems"]["lightmem"]
            row[name] = {
                key: system[key],
                "questions": system["questions"],
                "search_ms_p50": system.get("search_ms_p50"),
            }
        rows[sample] = row
        print(
            f"{sample:<10} default {row['default'][key]:.3f}  postgres {row['postgres'][key]:.3f}"
            f"  ({row['default']['questions']} questions)",
            flush=True,
        )
    total = {}
    for name in ("default", "postgres"):
        n = sum(r[name]["questions"] for r in rows.values())
        total[name] = sum(r[name][key] * r[name]["questions"] for r in rows.values()) / max(n, 1)
    print(
        f"all        default {total['default']:.3f}  postgres {total['postgres']:.3f}  "
        f"difference {total['postgres'] - total['default']:+.3f} (target within 0.01)"
    )
    return {"samples": rows, "overall": total, "k": args.k}


if __name__ == "__main__":
    sys.exit(main())
