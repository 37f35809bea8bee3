"""What the two retrievers share: the payload columns, the filter as SQL, a table's metadata."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, overload

from lightmem_hookspecs import IndexRecord, SearchFilter
from psycopg import sql

#: The payload fields the core writes (see ``SearchFilter``), as columns.
PAYLOAD_COLUMNS = (
    ("user_id", "text"),
    ("agent_id", "text"),
    ("run_id", "text"),
    ("speaker", "text"),
    ("topic_id", "bigint"),
    ("time_stamp", "double precision"),
)
PAYLOAD_NAMES = tuple(name for name, _ in PAYLOAD_COLUMNS)
PAYLOAD_TYPES = tuple(kind for _, kind in PAYLOAD_COLUMNS)
#: The payload columns' types, as named for a binary ``COPY``.
COPY_TYPES = tuple(
    {"text": "text", "bigint": "int8", "double precision": "float8"}[kind] for kind in PAYLOAD_TYPES
)


def payload_ddl() -> sql.Composable:
    return sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(kind))
        for name, kind in PAYLOAD_COLUMNS
    )


def payload_values(payload: Mapping[str, Any]) -> list[Any]:
    topic = payload.get("topic_id")
    ts = payload.get("time_stamp")
    return [
        _text(payload.get("user_id")),
        _text(payload.get("agent_id")),
        _text(payload.get("run_id")),
        _text(payload.get("speaker")),
        None if topic is None else int(topic),
        None if ts is None else float(ts),
    ]


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def last_per_id(records: Sequence[IndexRecord]) -> list[IndexRecord]:
    """One record per id, the last one given, in first-seen order."""
    out: dict[str, IndexRecord] = {}
    for r in records:
        out[r.id] = r
    return list(out.values())


@overload
def where(flt: SearchFilter | None) -> tuple[list[sql.Composable], list[Any]]: ...
@overload
def where(
    flt: SearchFilter | None, *, names: str
) -> tuple[list[sql.Composable], dict[str, Any]]: ...
def where(flt: SearchFilter | None, *, names: str | None = None) -> Any:
    """``SearchFilter`` as SQL conditions (to be AND-ed) and their parameters: positional, or
    named ``<names>0``, ``<names>1``, ... when ``names`` is given."""
    clauses: list[sql.Composable] = []
    params: list[Any] = []

    def mark() -> sql.Composable:
        return sql.Placeholder() if names is None else sql.Placeholder(f"{names}{len(params)}")

    if flt is not None:
        for name in ("user_id", "agent_id", "run_id", "speaker"):
            value = getattr(flt, name)
            if value is not None:
                clauses.append(sql.SQL("{} = {}").format(sql.Identifier(name), mark()))
                params.append(str(value))
        if flt.topic_id is not None:
            clauses.append(sql.SQL("topic_id = {}").format(mark()))
            params.append(int(flt.topic_id))
        bounds = (("time_gt", ">"), ("time_gte", ">="), ("time_lt", "<"), ("time_lte", "<="))
        for bound, op in bounds:
            value = getattr(flt, bound)
            if value is not None:
                clauses.append(sql.SQL("time_stamp {} {}").format(sql.SQL(op), mark()))
                params.append(float(value))
        if flt.exclude_ids:
            clauses.append(sql.SQL("NOT (id = ANY({}))").format(mark()))
            params.append(sorted(flt.exclude_ids))
    if names is None:
        return clauses, params
    return clauses, {f"{names}{i}": v for i, v in enumerate(params)}


def dump_meta(**values: Any) -> str:
    return json.dumps(values, sort_keys=True)
