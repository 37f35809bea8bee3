"""What both engines share: point ids, payload fields, filter conditions, metadata, errors."""

from __future__ import annotations

import math
import os
import threading
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
from lightmem_hookspecs import SearchFilter

#: Entry ids become point ids as ``uuid5(ID_NAMESPACE, entry_id)``: deterministic, any string.
ID_NAMESPACE = uuid.UUID("d050f4b2-e682-495b-af58-23d6db61118c")
#: Payload key holding the original entry id (point ids are derived UUIDs).
ID_FIELD = "lightmem_id"
#: Payload key holding the indexed text (``store_text: false`` leaves it out).
TEXT_FIELD = "text"
#: Filterable payload fields and the payload index each gets (see ``SearchFilter``).
KEYWORD_FIELDS = ("user_id", "agent_id", "run_id", "speaker")
INTEGER_FIELDS = ("topic_id",)
FLOAT_FIELDS = ("time_stamp",)
#: Keys of the description recorded with a collection (collection metadata or sidecar JSON).
META_MODEL = "lightmem_model_name"
META_DIMENSION = "lightmem_dimension"
META_FORMAT = "lightmem_format"
FORMAT = 1


def point_id(entry_id: str) -> uuid.UUID:
    """The Qdrant point id of an entry id (stable across processes and versions)."""
    return uuid.uuid5(ID_NAMESPACE, entry_id)


def describe(model_name: str, dimension: int) -> dict[str, Any]:
    return {META_MODEL: model_name, META_DIMENSION: dimension, META_FORMAT: FORMAT}


def check_compatible(
    *,
    collection: str,
    where: str,
    stored_model: str | None,
    stored_dimension: int | None,
    model_name: str,
    dimension: int,
) -> None:
    """Refuse to mix embeddings of two models (or sizes) in one collection."""
    same_model = stored_model is None or stored_model == model_name
    same_size = stored_dimension is None or stored_dimension == dimension
    if same_model and same_size:
        return
    built = f"model {stored_model!r}" if stored_model is not None else "an unrecorded model"
    size = f"{stored_dimension} dims" if stored_dimension is not None else "unknown dims"
    raise ValueError(
        f"qdrant collection {collection!r} ({where}) was built with {built} ({size}); this "
        f"config uses model {model_name!r} ({dimension} dims): use another collection_name/path, "
        f"or rebuild with `lightmem reindex`"
    )


def clean_vector(values: Sequence[float], dimension: int, what: str) -> list[float]:
    """``values`` as a list of floats, refusing a wrong size and NaN/inf.

    A zero vector is accepted (an embedder may return one for a text without words); Qdrant
    scores it 0 against everything.
    """
    vector = list(map(float, values))
    if len(vector) != dimension:
        raise ValueError(
            f"{what} has {len(vector)} dimensions but the collection holds {dimension}-dim "
            f"vectors: embed with the model the collection was opened with"
        )
    norm = math.hypot(*vector)
    if not math.isfinite(norm):
        raise ValueError(f"{what} contains NaN or infinite values")
    return vector


def clean_payload(entry_id: str, text: str, payload: Mapping[str, Any], *, store_text: bool):
    """The stored payload: the record's fields, normalised so native filters match them."""
    out: dict[str, Any] = {TEXT_FIELD: text} if store_text else {}
    out.update(payload)
    ts = out.get("time_stamp")
    if ts is not None:
        if isinstance(ts, bool) or not isinstance(ts, int | float):
            raise ValueError(
                f"record {entry_id!r}: payload time_stamp must be epoch seconds (a number), "
                f"got {ts!r}"
            )
        out["time_stamp"] = float(ts)
    topic = out.get("topic_id")
    if isinstance(topic, float) and topic.is_integer():
        out["topic_id"] = int(topic)
    out[ID_FIELD] = entry_id
    return out


@attrs.frozen
class Conditions:
    """A :class:`SearchFilter` in the shape both engines translate into a Qdrant filter."""

    equals: tuple[tuple[str, str | int], ...] = ()
    time_gt: float | None = None
    time_gte: float | None = None
    time_lt: float | None = None
    time_lte: float | None = None
    exclude: tuple[uuid.UUID, ...] = ()

    @classmethod
    def from_filter(cls, search_filter: SearchFilter | None) -> Conditions | None:
        if search_filter is None or search_filter.is_empty:
            return None
        equals = tuple(
            (key, getattr(search_filter, key))
            for key in (*KEYWORD_FIELDS, *INTEGER_FIELDS)
            if getattr(search_filter, key) is not None
        )
        return cls(
            equals=equals,
            time_gt=search_filter.time_gt,
            time_gte=search_filter.time_gte,
            time_lt=search_filter.time_lt,
            time_lte=search_filter.time_lte,
            exclude=tuple(sorted((point_id(i) for i in search_filter.exclude_ids), key=str)),
        )

    @property
    def is_empty(self) -> bool:
        return not self.equals and not self.has_time and not self.exclude

    @property
    def has_time(self) -> bool:
        return any(
            b is not None for b in (self.time_gt, self.time_gte, self.time_lt, self.time_lte)
        )


# -- one store per path and process ------------------------------------------------------------

_OPEN: dict[str, str] = {}
_OPEN_LOCK = threading.Lock()


def claim(path: str, owner: str) -> None:
    """Record that this process opened ``path``; refuse a second opener with a clear error."""
    key = os.path.realpath(path)
    with _OPEN_LOCK:
        if key in _OPEN:
            raise RuntimeError(
                f"qdrant store at {path} is already open in this process ({_OPEN[key]}); "
                f"local mode allows one open store per path: close the other LightMemory / "
                f"retriever first, use another path, or run a Qdrant server (url: ...)"
            )
        _OPEN[key] = owner


def release(path: str) -> None:
    with _OPEN_LOCK:
        _OPEN.pop(os.path.realpath(path), None)


def locked_error(path: str) -> RuntimeError:
    return RuntimeError(
        f"qdrant store at {path} is locked by another process: Qdrant's local mode allows one "
        f"process per path. Stop the other process (another LightMemory on the same memory_dir?), "
        f"give this one another path (embedding_retriever.configs.path), or run a Qdrant server "
        f"and set url/host so that several processes can share it"
    )
