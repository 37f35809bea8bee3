"""Which embedder made a memory's vectors: its fingerprint, kept in the record store's metadata,
so that vectors of two embedders are never mixed (the index stage checks it on open, export and
import carry it)."""

from __future__ import annotations

import json
from typing import Any

from .errors import StoreError

__all__ = ["EMBEDDER_META", "EmbedderChangedError", "check_embedder", "fingerprint"]

#: The record-store metadata key holding the fingerprint of the embedder that made the vectors.
EMBEDDER_META = "embedder_fingerprint"


class EmbedderChangedError(StoreError):
    """The memory's vectors were made by another embedder than the configured one."""


def fingerprint(embedder: Any, speaker_vector_weight: float) -> dict[str, Any] | None:
    if embedder is None:
        return None
    return {
        "model_name": str(embedder.model_name),
        "dimension": int(embedder.dimension),
        "speaker_vector_weight": float(speaker_vector_weight),
    }


def check_embedder(store: Any, current: dict[str, Any] | None, *, record: bool) -> None:
    """Refuse a memory whose vectors another embedder made; record the fingerprint the first
    time (and, with ``record``, after a reindex)."""
    if current is None:
        return
    found = store.get_meta(EMBEDDER_META)
    if found is not None and not record:
        stored = json.loads(found)
        if stored != current:
            raise EmbedderChangedError(
                f"this memory's vectors were made by the embedder {stored['model_name']!r} "
                f"({stored['dimension']} dimensions, speaker weight "
                f"{stored['speaker_vector_weight']}); the configuration's embedder is "
                f"{current['model_name']!r} ({current['dimension']} dimensions, speaker weight "
                f"{current['speaker_vector_weight']}). Run `lightmem reindex` with this "
                f"configuration to re-embed every entry, or configure the embedder it was "
                f"built with. Vectors of two embedders are never mixed."
            )
    if found is None or record:
        store.set_meta(EMBEDDER_META, json.dumps(current, sort_keys=True))
