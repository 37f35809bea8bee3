"""Lexical index candidates compared on LoCoMo text at growing sizes.

Every engine indexes the same analysed terms (the ``BM25`` analyser: word tokens, stopwords,
light stemming) of N records cycled from LoCoMo turns (each with a user id and a time stamp),
then answers LoCoMo questions. Per engine and size it measures: bulk indexing, adding one record
then searching (the agent's add->search cycle, p50 over ``--cycles`` pairs), search p50/p95 over
``--queries`` questions, reopening a persisted index, and the bytes on disk.

Engines (those not installed are skipped and reported as such):

- ``rank-bm25``: the ``BM25`` plugin (in memory; the first search after a change rebuilds).
- ``sqlite-bm25``: this plugin's default (posting blobs in SQLite, BM25 scored with numpy).
- ``sqlite-fts``: this plugin's FTS5 index (BM25 ranking in C, one transaction per call).
- ``naive-sqlite``: one SQLite row per (term, record), BM25 summed in a Python loop: the
  simplest index of our own, for reference.
- ``tantivy``: tantivy-py (Rust; a segment commit per change, a reader reload to see it).
- ``bm25s``: bm25s (scipy sparse matrices; no incremental add: a change means a rebuild).

    python plugins/lightmem-sqlite-index/benchmarks/lexical_compare.py \
        --data /work/shared/data/locomo/locomo-dev.json --sizes 10000,100000
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sqlite3
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from lightmem_hookspecs import IndexRecord
from lightmem_textkit.analysis import Analyzer

ANALYZER = Analyzer(stem=True)


def load(path: Path) -> tuple[list[str], list[str]]:
    samples = json.loads(path.read_text(encoding="utf-8"))
    texts = [
        f"{turn['speaker']}: {turn['text']}"
        for sample in samples
        for key, session in sample["conversation"].items()
        if key.startswith("session_") and isinstance(session, list)
        for turn in session
        if turn.get("text")
    ]
    questions = [q["question"] for sample in samples for q in sample["qa"]]
    return texts, questions


def make_records(texts: list[str], start: int, stop: int) -> list[IndexRecord]:
    return [
        IndexRecord(
            f"e{i:08d}",
            f"{texts[i % len(texts)]} #{i // len(texts)}",
            {"user_id": f"u{i % 10}", "time_stamp": float(i)},
        )
        for i in range(start, stop)
    ]


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# -- engines ---------------------------------------------------------------------------------


class RankBM25:
    name = "rank-bm25"

    def __init__(self, folder: Path) -> None:
        from lightmem_bm25.index import BM25Retriever

        self.index_ = BM25Retriever(analyzer=ANALYZER)

    def add(self, records: list[IndexRecord]) -> None:
        self.index_.index(records)

    def search(self, query: str, limit: int) -> list[str]:
        return [i for i, _ in self.index_.search(query, limit=limit)]

    def reopen(self) -> None:
        raise NotImplementedError("in memory only: the core re-indexes from the record store")


class SQLiteFTS:
    name = "sqlite-fts"

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.reopen()

    def add(self, records: list[IndexRecord]) -> None:
        self.index_.index(records)

    def search(self, query: str, limit: int) -> list[str]:
        return [i for i, _ in self.index_.search(query, limit=limit)]

    def reopen(self) -> None:
        from lightmem_sqlite_index.fts import SQLiteFTSRetriever

        if getattr(self, "index_", None) is not None:
            self.index_.close()
        self.index_ = SQLiteFTSRetriever(self.folder / "fts.sqlite3", ANALYZER)
        self.index_.count()


class SQLiteBM25(SQLiteFTS):
    name = "sqlite-bm25"

    def reopen(self) -> None:
        from lightmem_sqlite_index.bm25 import SQLiteBM25Retriever

        if getattr(self, "index_", None) is not None:
            self.index_.close()
        self.index_ = SQLiteBM25Retriever(self.folder / "bm25.sqlite3", ANALYZER)
        self.index_.count()


class OwnSQLite:
    """A posting per (term, record) row in SQLite; Lucene BM25 summed in a Python loop."""

    name = "naive-sqlite"
    k1, b = 1.5, 0.75

    def __init__(self, folder: Path) -> None:
        self.path = folder / "own.sqlite3"
        self.conn: sqlite3.Connection | None = None
        self.reopen()

    def reopen(self) -> None:
        if self.conn is not None:
            self.conn.close()
        conn = self.conn = sqlite3.connect(self.path, isolation_level=None)
        conn.executescript(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
            "CREATE TABLE IF NOT EXISTS docs (doc INTEGER PRIMARY KEY, id TEXT UNIQUE, len INT);"
            "CREATE TABLE IF NOT EXISTS post (term TEXT, doc INT, tf INT, "
            "PRIMARY KEY (term, doc)) WITHOUT ROWID;"
            "CREATE TABLE IF NOT EXISTS df (term TEXT PRIMARY KEY, n INT) WITHOUT ROWID;"
            "CREATE TABLE IF NOT EXISTS stats (k TEXT PRIMARY KEY, v INT);"
            "INSERT OR IGNORE INTO stats VALUES ('docs', 0), ('len', 0);"
        )

    def add(self, records: list[IndexRecord]) -> None:
        conn = self.conn
        assert conn is not None
        conn.execute("BEGIN")
        total = 0
        for record in records:
            terms = ANALYZER(record.text)
            cur = conn.execute("INSERT INTO docs (id, len) VALUES (?, ?)", (record.id, len(terms)))
            counts = Counter(terms)
            conn.executemany(
                "INSERT INTO post VALUES (?, ?, ?)",
                [(t, cur.lastrowid, c) for t, c in counts.items()],
            )
            conn.executemany(
                "INSERT INTO df VALUES (?, 1) ON CONFLICT (term) DO UPDATE SET n = n + 1",
                [(t,) for t in counts],
            )
            total += len(terms)
        conn.execute("UPDATE stats SET v = v + ? WHERE k = 'docs'", (len(records),))
        conn.execute("UPDATE stats SET v = v + ? WHERE k = 'len'", (total,))
        conn.execute("COMMIT")

    def search(self, query: str, limit: int) -> list[str]:
        conn = self.conn
        assert conn is not None
        terms = ANALYZER(query)
        if not terms:
            return []
        stats = dict(conn.execute("SELECT k, v FROM stats"))
        n_docs, avg = stats["docs"], stats["len"] / max(stats["docs"], 1)
        scores: dict[int, float] = {}
        for term, repeat in Counter(terms).items():
            row = conn.execute("SELECT n FROM df WHERE term = ?", (term,)).fetchone()
            if row is None:
                continue
            idf = math.log(1 + (n_docs - row[0] + 0.5) / (row[0] + 0.5)) * repeat
            for doc, tf, length in conn.execute(
                "SELECT p.doc, p.tf, d.len FROM post p JOIN docs d ON d.doc = p.doc "
                "WHERE p.term = ?",
                (term,),
            ):
                norm = tf * (self.k1 + 1) / (tf + self.k1 * (1 - self.b + self.b * length / avg))
                scores[doc] = scores.get(doc, 0.0) + idf * norm
        best = sorted(scores.items(), key=lambda kv: -kv[1])[:limit]
        ids = dict(
            conn.execute(
                f"SELECT doc, id FROM docs WHERE doc IN ({','.join('?' * len(best))})",
                [d for d, _ in best],
            )
        )
        return [ids[d] for d, _ in best]


class Tantivy:
    name = "tantivy"

    def __init__(self, folder: Path) -> None:
        import tantivy

        self.t = tantivy
        self.folder = folder / "tantivy"
        self.folder.mkdir()
        builder = tantivy.SchemaBuilder()
        builder.add_text_field("id", stored=True, tokenizer_name="raw")
        builder.add_text_field("body", stored=False, tokenizer_name="whitespace")
        self.schema = builder.build()
        self.reopen()

    def reopen(self) -> None:
        if getattr(self, "writer", None) is not None:
            self.writer.wait_merging_threads()  # releases the index lock
            self.writer = None
        self.index_ = self.t.Index(self.schema, path=str(self.folder))
        self.writer = self.index_.writer(heap_size=50_000_000, num_threads=1)

    def add(self, records: list[IndexRecord]) -> None:
        for record in records:
            self.writer.add_document(
                self.t.Document(id=record.id, body=" ".join(ANALYZER(record.text)))
            )
        self.writer.commit()
        self.index_.reload()

    def search(self, query: str, limit: int) -> list[str]:
        terms = ANALYZER(query)
        if not terms:
            return []
        searcher = self.index_.searcher()
        parsed = self.index_.parse_query(" ".join(f'"{t}"' for t in terms), ["body"])
        hits = searcher.search(parsed, limit).hits
        return [searcher.doc(address)["id"][0] for _, address in hits]


class BM25S:
    name = "bm25s"

    def __init__(self, folder: Path) -> None:
        import bm25s

        self.bm25s = bm25s
        self.ids: list[str] = []
        self.corpus: list[list[str]] = []
        self.model: Any = None

    def add(self, records: list[IndexRecord]) -> None:
        for record in records:
            self.ids.append(record.id)
            self.corpus.append(ANALYZER(record.text) or ["\x00"])
        self.model = None  # no incremental add: the next search rebuilds

    def search(self, query: str, limit: int) -> list[str]:
        terms = [t for t in ANALYZER(query)]
        if not terms:
            return []
        if self.model is None:
            self.model = self.bm25s.BM25(k1=1.5, b=0.75)
            self.model.index(self.corpus, show_progress=False)
        vocab = self.model.vocab_dict
        known = [t for t in terms if t in vocab]
        if not known:
            return []
        docs, _ = self.model.retrieve(
            [known], k=min(limit, len(self.ids)), show_progress=False, n_threads=1
        )
        return [self.ids[int(d)] for d in docs[0]]

    def reopen(self) -> None:
        raise NotImplementedError("in memory here; bm25s.save/load rewrite the whole index")


ENGINES = {e.name: e for e in (RankBM25, SQLiteBM25, SQLiteFTS, OwnSQLite, Tantivy, BM25S)}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(engine_cls: Any, size: int, texts: list[str], questions: list[str], args: Any) -> dict:
    folder = Path(tempfile.mkdtemp(prefix=f"lex-{engine_cls.name}-"))
    try:
        engine = engine_cls(folder)
        start = time.perf_counter()
        for lo in range(0, size, 1000):
            engine.add(make_records(texts, lo, min(size, lo + 1000)))
        bulk_s = time.perf_counter() - start
        engine.search("warm up the index", 10)
        lat = []
        for question in questions[: args.queries]:
            t0 = time.perf_counter()
            engine.search(question, 10)
            lat.append((time.perf_counter() - t0) * 1000)
        cycles = []
        for k in range(args.cycles):
            t0 = time.perf_counter()
            engine.add(make_records(texts, size + k, size + k + 1))
            engine.search(questions[k % len(questions)], 10)
            cycles.append((time.perf_counter() - t0) * 1000)
        result: dict[str, Any] = {
            "bulk_index_s": round(bulk_s, 2),
            "search_p50_ms": round(pct(lat, 0.5), 2),
            "search_p95_ms": round(pct(lat, 0.95), 2),
            "add_then_search_p50_ms": round(pct(cycles, 0.5), 2),
            "add_then_search_p95_ms": round(pct(cycles, 0.95), 2),
        }
        try:
            t0 = time.perf_counter()
            engine.reopen()
            engine.search(questions[0], 10)
            result["reopen_and_first_search_ms"] = round((time.perf_counter() - t0) * 1000, 1)
            result["disk_mb"] = round(dir_bytes(folder) / 1e6, 1)
        except NotImplementedError as exc:
            result["reopen_and_first_search_ms"] = None
            result["persisted"] = str(exc)
        return result
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def recall_at_10(engine_cls: Any, path: Path) -> float:
    """Evidence recall@10 over raw LoCoMo turns ("Speaker: text"), questions of categories 1-4."""
    samples = json.loads(path.read_text(encoding="utf-8"))
    total, questions = 0.0, 0
    for sample in samples:
        turns = [
            turn
            for key, session in sample["conversation"].items()
            if key.startswith("session_") and isinstance(session, list)
            for turn in session
        ]
        folder = Path(tempfile.mkdtemp(prefix="lex-recall-"))
        try:
            engine = engine_cls(folder)
            engine.add(
                [
                    IndexRecord(t["dia_id"], f"{t['speaker']}: {t.get('text', '')}", {})
                    for t in turns
                ]
            )
            for qa in sample["qa"]:
                evidence = set(qa.get("evidence") or [])
                if qa.get("category") not in (1, 2, 3, 4) or not evidence:
                    continue
                found = set(engine.search(str(qa["question"]), 10))
                total += len(found & evidence) / len(evidence)
                questions += 1
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    return round(total / max(questions, 1), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, type=Path, help="a LoCoMo JSON file")
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--cycles", type=int, default=30)
    parser.add_argument("--recall", action="store_true", help="also LoCoMo raw-turn recall@10")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/lexical_compare.json"))
    args = parser.parse_args()
    texts, questions = load(args.data)
    results: dict[str, Any] = {"cpu_count": os.cpu_count(), "runs": {}}
    if args.recall:
        for name in args.engines.split(","):
            try:
                value: Any = recall_at_10(ENGINES[name], args.data)
            except ImportError as exc:
                value = f"not installed: {exc}"
            results.setdefault("locomo_raw_turn_recall_at_10", {})[name] = value
            print(f"{name:>12}: LoCoMo raw-turn evidence recall@10 {value}", flush=True)
    for size in [int(s) for s in args.sizes.split(",") if s]:
        for name in args.engines.split(","):
            try:
                res = run(ENGINES[name], size, texts, questions, args)
            except ImportError as exc:
                res = {"skipped": f"not installed: {exc}"}
            results["runs"][f"{name}@{size}"] = res
            print(f"{name:>11} @ {size:>7}: {res}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
