"""What the two retrievers share: the payload columns, the filter as SQL, a table's metadata."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

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


def where(flt: SearchFilter | None) -> tuple[list[sql.Composable], list[Any]]:
    """``SearchFilter`` as SQL conditions (to be AND-ed) and their parameters."""
    if flt is None:
        return [], []
    clauses: list[sql.Composable] = []
    params: list[Any] = []
    for name in ("user_id", "agent_id", "run_id", "speaker"):
        value = getattr(flt, name)
        if value is not None:
            clauses.append(sql.SQL("{} = %s").format(sql.Identifier(name)))
            params.append(str(value))
    if flt.topic_id is not None:
        clauses.append(sql.SQL("topic_id = %s"))
        params.append(int(flt.topic_id))
    for bound, op in (("time_gt", ">"), ("time_gte", ">="), ("time_lt", "<"), ("time_lte", "<=")):
        value = getattr(flt, bound)
        if value is not None:
            clauses.append(sql.SQL("time_stamp {} %s").format(sql.SQL(op)))
            params.append(float(value))
    if flt.exclude_ids:
        clauses.append(sql.SQL("NOT (id = ANY(%s))"))
        params.append(sorted(flt.exclude_ids))
    return clauses, params


def dump_meta(**values: Any) -> str:
    return json.dumps(values, sort_keys=True)
