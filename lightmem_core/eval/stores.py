"""Stores an evaluation may open again instead of ingesting (``--reuse``).

Ingesting is most of an evaluation's time; a change to retrieval alone (fusion, rerankers, the
pool size, the fusion weights) can be measured on the memories an earlier run kept with
``--memory-dir``. After ingesting a sample the harness writes :data:`STAMP` into its store: the
sample's messages and the configuration that made the store, each hashed, without the keys that
only change how the store is searched (:data:`SEARCH_ONLY`). With ``--reuse`` a store whose stamp
matches is opened and searched as it is; any other non-empty folder is refused, saying why.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import InputError

#: The file, in a sample's store, saying what was ingested into it and how.
STAMP = "lightmem-eval-ingest.json"

#: Top-level configuration keys that change how a store is searched, not what is in it.
SEARCH_ONLY = frozenset({"hybrid_weights", "reranker"})
#: Keys of the ``retrieval`` section that change how a store is searched (``retrievers`` is
#: not among them: the chain decides which indexes ingestion fills).
SEARCH_ONLY_RETRIEVAL = frozenset(
    {"fusion", "rerankers", "pool_size", "named_speaker", "segments", "exchange"}
)
#: Keys that place the store (replaced by the harness for each sample).
PLACEMENT = frozenset({"memory_dir", "history_db_path"})


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def ingest_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` without the keys that place the store or only change how it is searched."""
    out = {k: v for k, v in config.items() if k not in SEARCH_ONLY | PLACEMENT}
    retrieval = out.get("retrieval")
    if isinstance(retrieval, Mapping):
        kept = {k: v for k, v in retrieval.items() if k not in SEARCH_ONLY_RETRIEVAL}
        if kept:
            out["retrieval"] = kept
        else:
            out.pop("retrieval")
    return out


def stamp_of(
    sample_id: str, messages: Sequence[Mapping[str, Any]], config: Mapping[str, Any]
) -> dict[str, str]:
    """What :data:`STAMP` holds for ``sample_id`` ingested from ``messages`` with ``config``."""
    return {
        "sample": sample_id,
        "messages": _digest(list(messages)),
        "ingest_config": _digest(ingest_config(config)),
    }


def write_stamp(store_dir: Path, stamp: Mapping[str, Any]) -> None:
    """Record that ``store_dir`` holds the complete ingest described by ``stamp``. The folder
    is made if the memory left nothing there (its stores are on a server)."""
    store_dir.mkdir(parents=True, exist_ok=True)
    (store_dir / STAMP).write_text(json.dumps(dict(stamp), indent=1), encoding="utf-8")


def reusable(store_dir: Path, stamp: Mapping[str, Any], *, reuse: bool) -> bool:
    """Whether ``store_dir`` is to be searched as it is (``True``) or filled (``False``).

    An empty or missing folder is filled. A non-empty one is reused only with ``reuse`` and a
    stamp equal to ``stamp``; otherwise an :class:`InputError` says why.
    """
    if not store_dir.exists() or not any(store_dir.iterdir()):
        return False
    if not reuse:
        raise InputError(
            f"--memory-dir: {store_dir} is not empty; the evaluation needs a fresh store per "
            "sample. Remove it, choose another directory, or pass --reuse to search the store "
            "an earlier run left there."
        )
    path = store_dir / STAMP
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise InputError(
            f"--reuse: {store_dir} has no readable {STAMP} (it was not filled completely by "
            "the evaluation, or by an older version); remove the folder to ingest it again"
        ) from None
    if not isinstance(found, Mapping):
        found = {}
    keys = ("sample", "messages", "ingest_config")
    differ = [key for key in keys if found.get(key) != stamp[key]]
    if differ:
        what = {
            "sample": "another sample",
            "messages": "other messages (the data changed)",
            "ingest_config": "another configuration (a key other than hybrid_weights, "
            "reranker, retrieval.fusion, retrieval.rerankers, retrieval.pool_size, "
            "retrieval.named_speaker, retrieval.segments or retrieval.exchange differs)",
        }
        raise InputError(
            f"--reuse: {store_dir} was filled from {' and '.join(what[k] for k in differ)}; "
            "remove the folder to ingest it again, or use another --memory-dir"
        )
    return True
