"""Query validation at the API boundary: query text, limit, filters and scope.

Scope semantics of a search (and of ``get_all``): the scope of a query is the triple
``(user_id, agent_id, run_id)`` given as keyword arguments or as the same keys in ``filters``
(giving one key both ways with different values is an error). When any of the three is set,
the query sees exactly that scope: an entry matches only if all three fields are equal, and a
field the query leaves unset matches only entries with that field unset. A query that sets none
of them sees every scope, unless the configuration says ``require_scope: true``, which makes
such a query an :class:`~lightmem_core.errors.ScopeRequiredError`.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

import attrs
from lightmem_hookspecs import Scope, SearchFilter

from .errors import InputError, ScopeRequiredError
from .scope import SCOPE_FIELDS, check_text, is_unscoped, make_scope, same_scope

#: The largest ``limit`` a search accepts.
MAX_LIMIT = 10_000
#: The longest query accepted (characters).
MAX_QUERY_LENGTH = 100_000


def check_query(query: Any) -> str:
    if not isinstance(query, str) or not query.strip():
        raise InputError(f"query: expected a non-empty string, got {type(query).__name__}")
    if len(query) > MAX_QUERY_LENGTH:
        raise InputError(f"query: at most {MAX_QUERY_LENGTH} characters, got {len(query)}")
    return check_text(query, "query")


def check_entry_id(entry_id: Any, where: str = "entry_id") -> str:
    if not isinstance(entry_id, str) or not entry_id:
        raise InputError(f"{where}: expected an entry id string, got {type(entry_id).__name__}")
    return check_text(entry_id, where)


def check_limit(limit: Any) -> int:
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        raise InputError(f"limit: expected an integer from 1 to {MAX_LIMIT}, got {limit!r}")
    return limit


def _time_bound(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        try:
            value = SearchFilter(time_gte=value).time_gte
        except (ValueError, OverflowError, OSError) as exc:
            raise InputError(f"filters.{name}: {value!r} cannot be used: {exc}") from exc
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(
            f"filters.{name}: expected epoch seconds or a datetime, got {type(value).__name__}"
        )
    number = float(value)
    if not math.isfinite(number):
        raise InputError(f"filters.{name}: expected a finite number, got {value!r}")
    return number


def _fields(filters: SearchFilter | Mapping[str, Any] | None) -> dict[str, Any]:
    if filters is None:
        return {}
    if isinstance(filters, SearchFilter):
        return {f.name: getattr(filters, f.name) for f in attrs.fields(SearchFilter)}
    if not isinstance(filters, Mapping):
        raise InputError(
            f"filters: expected a mapping or SearchFilter, got {type(filters).__name__}"
        )
    allowed = {f.name for f in attrs.fields(SearchFilter)}
    unknown = [k for k in filters if k not in allowed]
    if unknown:
        raise InputError(
            f"filters: unknown key(s) {', '.join(sorted(map(repr, unknown)))}; allowed: "
            f"{', '.join(sorted(allowed))}"
        )
    return dict(filters)


def build_filter(
    filters: SearchFilter | Mapping[str, Any] | None,
    user_id: Any = None,
    agent_id: Any = None,
    run_id: Any = None,
    *,
    require_scope: bool = False,
) -> SearchFilter:
    """A validated :class:`SearchFilter` for a search: scope merged in (see the module docs)."""
    fields = _fields(filters)
    given = make_scope(user_id, agent_id, run_id)
    in_filter = make_scope(*(fields.get(k) for k in SCOPE_FIELDS))
    merged: dict[str, str | None] = {}
    for key in SCOPE_FIELDS:
        a, b = getattr(given, key), getattr(in_filter, key)
        if a is not None and b is not None and a != b:
            raise InputError(f"{key}: {a!r} as an argument but {b!r} in filters; give one")
        merged[key] = a if a is not None else b
    scope = Scope(**merged)
    if require_scope and is_unscoped(scope):
        raise ScopeRequiredError(
            "this memory is configured with require_scope: a query must name a user_id, "
            "agent_id or run_id (it would otherwise search every scope)"
        )
    speaker = fields.get("speaker")
    if speaker is not None:
        if not isinstance(speaker, str):
            raise InputError(f"filters.speaker: expected a string, got {type(speaker).__name__}")
        check_text(speaker, "filters.speaker")
    topic_id = fields.get("topic_id")
    if topic_id is not None and (isinstance(topic_id, bool) or not isinstance(topic_id, int)):
        raise InputError(f"filters.topic_id: expected an integer, got {topic_id!r}")
    if topic_id is not None and not -(2**63) <= topic_id < 2**63:
        raise InputError(f"filters.topic_id: out of range: {topic_id}")
    exclude = fields.get("exclude_ids") or ()
    if isinstance(exclude, str | bytes) or not isinstance(exclude, list | tuple | set | frozenset):
        raise InputError(
            f"filters.exclude_ids: expected a list of entry ids, got {type(exclude).__name__}"
        )
    for item in exclude:
        if not isinstance(item, str):
            raise InputError(f"filters.exclude_ids: expected strings, got {item!r}")
        check_text(item, "filters.exclude_ids")
    return SearchFilter(
        user_id=scope.user_id,
        agent_id=scope.agent_id,
        run_id=scope.run_id,
        speaker=speaker,
        topic_id=topic_id,
        time_gt=_time_bound(fields.get("time_gt"), "time_gt"),
        time_gte=_time_bound(fields.get("time_gte"), "time_gte"),
        time_lt=_time_bound(fields.get("time_lt"), "time_lt"),
        time_lte=_time_bound(fields.get("time_lte"), "time_lte"),
        exclude_ids=frozenset(exclude),
    )


def filter_scope(f: SearchFilter) -> Scope | None:
    """The exact scope a filter selects, or ``None`` when it names no scope (every scope)."""
    scope = Scope(f.user_id or None, f.agent_id or None, f.run_id or None)
    return None if is_unscoped(scope) else scope


def in_scope(entry_scope: Scope, f: SearchFilter) -> bool:
    """Whether an entry of ``entry_scope`` belongs to the scope ``f`` selects (exactly)."""
    scope = filter_scope(f)
    return scope is None or same_scope(entry_scope, scope)


def query_scope(
    user_id: Any = None, agent_id: Any = None, run_id: Any = None, *, require_scope: bool = False
) -> Scope | None:
    """The exact scope of a listing (``get_all``); ``None`` means every scope."""
    scope = make_scope(user_id, agent_id, run_id)
    if is_unscoped(scope):
        if require_scope:
            raise ScopeRequiredError(
                "this memory is configured with require_scope: name a user_id, agent_id or run_id"
            )
        return None
    return scope
