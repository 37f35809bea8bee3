"""Backends that ship with the core, registered through its own entry point like any plugin."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
from lightmem_hookspecs import BackendContext, BackendRegistrar, Message, hookimpl
from lightmem_hookspecs.options import at_least, in_range, non_negative

#: The plugin contract (lightmem-hookspecs) version this plugin is built for.
LIGHTMEM_CONTRACT = "1.7"


@attrs.frozen
class EmbeddingSegmenterOptions:
    """Options of the ``embedding`` topic segmenter.

    A boundary is placed before turn ``i`` when the similarity between the turns before and
    after it (mean of ``window`` turns each side) is a local minimum and either below
    ``threshold`` or more than ``z`` standard deviations under the buffer's mean similarity.
    """

    window: int = attrs.field(default=2, validator=at_least(1))
    threshold: float | None = attrs.field(default=None, validator=in_range(-1.0, 1.0))
    z: float = attrs.field(default=1.0, validator=non_negative)
    min_segment: int = attrs.field(default=2, validator=at_least(1))


class EmbeddingSegmenter:
    """Cuts where the embedding similarity of consecutive turns drops (no extra model)."""

    def __init__(self, options: EmbeddingSegmenterOptions, embedder: Any) -> None:
        self.options = options
        self.embedder = embedder

    def segment(self, messages: Sequence[Message]) -> list[int]:
        n = len(messages)
        if n < 2:
            return []
        import numpy as np

        vectors = np.asarray(self.embedder.embed([m.content for m in messages]), dtype=np.float32)
        sims = similarity_profile(vectors, self.options.window)
        return boundaries_from_profile(
            sims,
            threshold=self.options.threshold,
            z=self.options.z,
            min_segment=self.options.min_segment,
        )


def similarity_profile(vectors: Any, window: int) -> Any:
    """``sims[i-1]``: cosine similarity of the ``window`` turns before ``i`` and from ``i`` on."""
    import numpy as np

    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = vectors / np.maximum(norms, 1e-12)
    n = len(vectors)
    sims = np.empty(n - 1, dtype=np.float32)
    for i in range(1, n):
        left = vectors[max(0, i - window) : i].mean(axis=0)
        right = vectors[i : min(n, i + window)].mean(axis=0)
        denom = float(np.linalg.norm(left) * np.linalg.norm(right)) or 1e-12
        sims[i - 1] = float(left @ right) / denom
    return sims


def boundaries_from_profile(
    sims: Any, *, threshold: float | None, z: float, min_segment: int
) -> list[int]:
    """Pick boundary indices (``i`` in 1..n-1) at local minima of a similarity profile."""
    import numpy as np

    if len(sims) == 0:
        return []
    mean, std = float(np.mean(sims)), float(np.std(sims))
    cut = threshold if threshold is not None else mean - z * std
    candidates = []
    for k, value in enumerate(sims):
        left = sims[k - 1] if k > 0 else np.inf
        right = sims[k + 1] if k + 1 < len(sims) else np.inf
        if value <= left and value <= right and value < cut:
            candidates.append((float(value), k + 1))
    chosen: list[int] = []
    n = len(sims) + 1
    for _, index in sorted(candidates):
        if index < min_segment or n - index < min_segment:
            continue
        if all(abs(index - c) >= min_segment for c in chosen):
            chosen.append(index)
    return sorted(chosen)


def _build_embedding_segmenter(
    options: EmbeddingSegmenterOptions, context: BackendContext
) -> EmbeddingSegmenter:
    embedder = context.get_backend("text_embedder")
    if embedder is None:
        raise ValueError(
            "topic_segmenter 'embedding' needs a text_embedder: configure text_embedder "
            "(e.g. {'model_name': 'huggingface'}) or choose another topic_segmenter"
        )
    return EmbeddingSegmenter(options, embedder)


def _build_sqlite_store(options: None, context: BackendContext) -> Any:
    from .store import SQLiteRecordStore

    return SQLiteRecordStore(context.settings.get("db_path") or f"{context.memory_dir}/history.db")


@hookimpl
def lightmem_register_backends(registrar: BackendRegistrar) -> None:
    from .recency import NewerFirst, NewerFirstOptions

    def build_image_index(options: Any, context: BackendContext) -> Any:
        from .images import build_image_index

        return build_image_index(options, context)

    registrar.record_store(
        "sqlite",
        _build_sqlite_store,
        description=(
            "SQLite (WAL) in the memory directory, owned by one process (the default); "
            "history_db_path names another file."
        ),
    )
    registrar.topic_segmenter(
        "embedding",
        _build_embedding_segmenter,
        options=EmbeddingSegmenterOptions,
        description="Cuts topics where the embedding similarity of consecutive turns drops.",
    )
    registrar.reranker(
        "newer_first",
        lambda options, context: NewerFirst(options),
        options=NewerFirstOptions,
        description="Of memories competing for the same answer, the newer first (the "
        "default reranker of a memory without an LLM).",
    )
    registrar.context_retriever(
        "multimodal",
        build_image_index,
        description=(
            "Images by the query's embedding in the multimodal_embedder's space (joins the "
            "chain as 'multimodal' when multimodal_embedder is configured)"
        ),
    )
