"""The in-memory BM25 context retriever, scored by rank-bm25, rebuilt lazily after changes."""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lightmem_hookspecs import IndexRecord, SearchFilter
from lightmem_textkit.analysis import Analyzer
from rank_bm25 import BM25L, BM25Okapi, BM25Plus

log = logging.getLogger("lightmem.bm25")

SNAPSHOT_FORMAT = "lightmem-bm25/1"


class _OkapiNonNegativeIdf(BM25Okapi):
    """BM25 Okapi with Lucene's IDF, ``ln(1 + (N - n + 0.5) / (n + 0.5))``.

    The classic IDF is negative for a term found in more than half of the records, which in a
    small memory (one or two entries) makes every match score zero or less.
    """

    def _calc_idf(self, nd: Mapping[str, int]) -> None:
        n_docs = self.corpus_size
        for word, freq in nd.items():
            self.idf[word] = math.log(1.0 + (n_docs - freq + 0.5) / (freq + 0.5))
        self.average_idf = sum(self.idf.values()) / len(self.idf) if self.idf else 0.0


_VARIANTS = {"okapi": _OkapiNonNegativeIdf, "plus": BM25Plus, "l": BM25L}


class _Doc:
    __slots__ = ("payload", "terms", "text")

    def __init__(self, terms: list[str], payload: dict[str, Any], text: str | None) -> None:
        self.terms, self.payload, self.text = terms, payload, text


class BM25Retriever:
    """A lexical index over memory entries (a :class:`~lightmem_hookspecs.ContextRetriever`).

    Records live in a dict; rank-bm25's statistics and an inverted index are rebuilt on the
    first search after a change, so indexing many records one call at a time stays linear.
    ``search`` scores only the records sharing a term with the query and returns those that
    pass the filter with a positive score, best first (ties by id).
    """

    def __init__(
        self,
        *,
        analyzer: Analyzer | None = None,
        k1: float = 1.5,
        b: float = 0.75,
        variant: str = "okapi",
        snapshot_path: str | os.PathLike[str] | None = None,
    ) -> None:
        if variant not in _VARIANTS:
            raise ValueError(
                f"variant: unknown BM25 variant {variant!r}; choose one of okapi, plus, l"
            )
        self.analyzer = analyzer or Analyzer()
        self.k1, self.b, self.variant = k1, b, variant
        self.snapshot_path = Path(snapshot_path) if snapshot_path is not None else None
        self._docs: dict[str, _Doc] = {}
        self._lock = threading.RLock()
        self._stale = True
        self._ids: list[str] = []
        self._postings: dict[str, list[int]] = {}
        self._bm25: Any = None
        self._snapshot_current = False
        if self.snapshot_path is not None:
            self._load_snapshot()

    # -- ContextRetriever --------------------------------------------------------------------

    def index(self, records: Sequence[IndexRecord]) -> None:
        """Add records; a record whose id is already indexed replaces the old one."""
        keep_text = self.snapshot_path is not None
        with self._lock:
            for record in records:
                self._docs[record.id] = _Doc(
                    self.analyzer(record.text),
                    dict(record.payload),
                    record.text if keep_text else None,
                )
            if records:
                self._changed()

    def delete(self, ids: Sequence[str]) -> None:
        """Remove records by id; unknown ids are ignored."""
        with self._lock:
            removed = [i for i in ids if self._docs.pop(i, None) is not None]
            if removed:
                self._changed()

    def count(self) -> int:
        """The number of indexed records (the core compares it with its active entries)."""
        return len(self._docs)

    def search(
        self, query: str, *, limit: int, filter: SearchFilter | None = None
    ) -> list[tuple[str, float]]:
        """``(id, score)`` of the best ``limit`` records sharing a term with ``query``."""
        if limit <= 0:
            return []
        terms = self.analyzer(query)
        if not terms:
            return []
        with self._lock:
            if self._stale:
                self._rebuild()
            candidates: set[int] = set()
            for term in set(terms):
                candidates.update(self._postings.get(term, ()))
            if not candidates:
                return []
            ids = self._ids
            positions = sorted(candidates)
            if filter is not None and not filter.is_empty:
                positions = [
                    p for p in positions if filter.matches(ids[p], self._docs[ids[p]].payload)
                ]
                if not positions:
                    return []
            scores = self._bm25.get_batch_scores(terms, positions)
        hits = [(ids[p], float(s)) for p, s in zip(positions, scores, strict=True) if s > 0]
        hits.sort(key=lambda hit: (-hit[1], hit[0]))
        return hits[:limit]

    def close(self) -> None:
        """Write the snapshot when one is configured and the index changed since it was read."""
        with self._lock:
            if self.snapshot_path is not None and not self._snapshot_current:
                self._write_snapshot()

    # -- internals ---------------------------------------------------------------------------

    def _changed(self) -> None:
        self._stale = True
        if self._snapshot_current and self.snapshot_path is not None:
            # A crash from now on must not leave a snapshot that looks current: without one the
            # core sees count() == 0 and rebuilds the index from its record store.
            self.snapshot_path.unlink(missing_ok=True)
        self._snapshot_current = False

    def _rebuild(self) -> None:
        self._ids = list(self._docs)
        corpus = [self._docs[i].terms for i in self._ids]
        postings: dict[str, list[int]] = {}
        for position, terms in enumerate(corpus):
            for term in set(terms):
                postings.setdefault(term, []).append(position)
        self._postings = postings
        self._bm25 = _VARIANTS[self.variant](corpus, k1=self.k1, b=self.b) if postings else None
        self._stale = False

    def _load_snapshot(self) -> None:
        assert self.snapshot_path is not None
        if not self.snapshot_path.exists():
            return
        try:
            data = json.loads(self.snapshot_path.read_text(encoding="utf-8"))
            if data.get("format") != SNAPSHOT_FORMAT:
                raise ValueError(f"unknown format {data.get('format')!r}")
            records = [IndexRecord(r["id"], r["text"], r["payload"]) for r in data["records"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning(
                "BM25 snapshot %s is unreadable (%s); starting empty, the index will be rebuilt "
                "from the record store",
                self.snapshot_path,
                exc,
            )
            return
        self.index(records)
        self._snapshot_current = True

    def _write_snapshot(self) -> None:
        assert self.snapshot_path is not None
        records = [
            {"id": i, "text": d.text or "", "payload": d.payload} for i, d in self._docs.items()
        ]
        self.snapshot_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.snapshot_path.with_name(self.snapshot_path.name + ".tmp")
        tmp.write_text(
            json.dumps({"format": SNAPSHOT_FORMAT, "records": records}, ensure_ascii=False),
            encoding="utf-8",
        )
        os.replace(tmp, self.snapshot_path)
        self._snapshot_current = True
