"""Raw-turn baselines: BM25, dense and their rank fusion over the conversation turns as spoken.

They run on the same backends as the pipeline under test (its text embedder's model and its
BM25 options), so a report compares what LightMem does with the turns against searching the
turns directly. The dense baseline is an exact cosine search (numpy), an upper bound for any
vector index over the same vectors. The fusion baseline uses the pipeline's
``hybrid_weights`` (weights and ``rrf_k``) and the same candidate depth as the core.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
from lightmem_hookspecs import BackendContext, IndexRecord

from ..config import BackendSpec, HybridWeights, ResolvedConfig, resolve_backend

BASELINES = ("bm25-turns", "dense-turns", "fusion-turns")


def turn_text(message: Mapping[str, Any]) -> str:
    """A raw turn as a reader sees it: ``"Speaker: text"`` (the text alone without a speaker's
    name: a bare role such as LongMemEval's ``user`` names no one)."""
    speaker = message.get("speaker_name")
    content = str(message["content"]).strip()
    return f"{speaker}: {content}" if speaker else content


def fuse(signals: Mapping[str, Sequence[str]], weights: HybridWeights, limit: int) -> list[str]:
    """Reciprocal-rank fusion of ranked id lists, with the core's own fusion step."""
    from ..pipeline.fusion import Ranked, rrf

    lists = [
        Ranked(signal, getattr(weights, signal), [(i, 0.0) for i in ids])
        for signal, ids in signals.items()
    ]
    return [h.id for h in rrf(lists, k=weights.rrf_k)][:limit]


@attrs.define
class BaselineTimings:
    """Seconds spent by the baselines; ``embed_s`` is MiniLM (the embedder) alone."""

    embed_s: float = 0.0
    bm25_index_s: float = 0.0
    turns: int = 0


class TurnBaselines:
    """Indexes one conversation's turns and answers queries for every raw-turn baseline."""

    def __init__(
        self,
        embedder: Any,
        bm25: Any,
        weights: HybridWeights,
    ) -> None:
        self.embedder, self.bm25, self.weights = embedder, bm25, weights
        self.ids: list[str] = []
        self.matrix: Any = None
        self.timings = BaselineTimings()

    def ingest(self, messages: Sequence[Mapping[str, Any]]) -> None:
        import numpy as np

        texts = [turn_text(m) for m in messages]
        self.ids = [str(m["id"]) for m in messages]
        started = time.perf_counter()
        self.matrix = np.asarray(self.embedder.embed(texts), dtype=np.float32)
        self.timings.embed_s += time.perf_counter() - started
        started = time.perf_counter()
        self.bm25.index([IndexRecord(id=i, text=t) for i, t in zip(self.ids, texts, strict=True)])
        self.bm25.search("warm up the lazily built index", limit=1)
        self.timings.bm25_index_s += time.perf_counter() - started
        self.timings.turns += len(texts)

    def search(
        self, query: str, k: int, depth: int | None = None
    ) -> dict[str, tuple[list[str], float]]:
        """``{baseline: (top message ids, seconds)}`` for one query: the top ``k``, or the top
        ``depth`` (at least ``k``) when given, e.g. to cut each list to a number of words."""
        import numpy as np

        depth = max(depth or k, k)
        fetch = max(k * 5, 50, depth)
        started = time.perf_counter()
        vector = np.asarray(self.embedder.embed([query]), dtype=np.float32)[0]
        scores = self.matrix @ vector
        top = np.argsort(-scores, kind="stable")[:fetch]
        dense = [self.ids[i] for i in top]
        dense_s = time.perf_counter() - started
        started = time.perf_counter()
        lexical = [i for i, _ in self.bm25.search(query, limit=fetch)]
        bm25_s = time.perf_counter() - started
        started = time.perf_counter()
        fused = fuse({"embedding": dense, "context": lexical}, self.weights, depth)
        fuse_s = time.perf_counter() - started
        return {
            "bm25-turns": (lexical[:depth], bm25_s),
            "dense-turns": (dense[:depth], dense_s),
            "fusion-turns": (fused, dense_s + bm25_s + fuse_s),
        }

    def close(self) -> None:
        close = getattr(self.bm25, "close", None)
        if callable(close):
            close()


def build_bm25(resolved: ResolvedConfig, memory_dir: str) -> Any:
    """A fresh, empty context retriever in ``memory_dir``, built like the memory's own
    ``context_retriever`` (its backend and options, as resolved for the memory); a memory
    without one gets ``BM25`` with its default options."""
    selected = resolved.for_key("context_retriever")
    if selected is not None:
        registration, options = selected.registration, selected.options
    else:
        registration, options = resolve_backend(
            resolved.host, "$.context_retriever", "context_retriever", BackendSpec("BM25")
        )
    return registration.factory(options, BackendContext(memory_dir=memory_dir))
