"""Scopes: who a message or memory belongs to, validated once and matched exactly everywhere.

A scope is the triple ``(user_id, agent_id, run_id)``. Each value is a non-empty string or
unset (``None``). The empty string is refused with an
:class:`~lightmem_core.errors.EmptyScopeError`: a query with ``user_id=""`` would otherwise
name no scope and so see every tenant. Anything else (an int, bytes, a string that cannot be
encoded as UTF-8) is refused with an :class:`~lightmem_core.errors.InputError` before anything
is written: ``123`` and ``"123"`` would otherwise be one tenant in the record store and two in
an index.

Matching is exact: an entry belongs to the scope ``(alice, None, None)`` only when its user is
``alice`` and its agent and run are unset. :func:`scope_key` is the canonical, collision-free
text form of a scope (a JSON array), used as a key in the record store.
"""

from __future__ import annotations

import json
from typing import Any

from lightmem_hookspecs import Scope

from .errors import EmptyScopeError, InputError

SCOPE_FIELDS = ("user_id", "agent_id", "run_id")

#: The longest scope value accepted (characters).
MAX_SCOPE_LENGTH = 1000


def check_text(value: str, where: str) -> str:
    """``value`` if it can be stored as UTF-8; an :class:`InputError` naming ``where`` if not."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(
            f"{where}: contains a character that cannot be encoded as UTF-8 (a lone surrogate "
            f"at position {exc.start}); decode the text properly before passing it"
        ) from exc
    return value


def scope_value(value: Any, name: str) -> str | None:
    """One validated scope value: a non-empty string, or ``None`` for unset."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InputError(
            f"{name}: expected a string or None, got {type(value).__name__} {value!r}; pass "
            f"{name}=str(...) if the id is a number"
        )
    if value == "":
        raise EmptyScopeError(
            f"{name}: the empty string is not a scope id; pass None (or leave {name} out) for "
            f"unset, or a non-empty id"
        )
    if len(value) > MAX_SCOPE_LENGTH:
        raise InputError(f"{name}: at most {MAX_SCOPE_LENGTH} characters, got {len(value)}")
    return check_text(value, name)


def make_scope(user_id: Any = None, agent_id: Any = None, run_id: Any = None) -> Scope:
    """A validated :class:`Scope` from the three values a public call was given."""
    return Scope(
        scope_value(user_id, "user_id"),
        scope_value(agent_id, "agent_id"),
        scope_value(run_id, "run_id"),
    )


def normalize_scope(scope: Scope) -> Scope:
    """``scope`` with each value validated."""
    return make_scope(scope.user_id, scope.agent_id, scope.run_id)


def is_unscoped(scope: Scope) -> bool:
    return scope.user_id is None and scope.agent_id is None and scope.run_id is None


def scope_key(scope: Scope) -> str:
    """The canonical text of a scope: a JSON array, so no value can imitate another scope."""
    return json.dumps([scope.user_id, scope.agent_id, scope.run_id], ensure_ascii=False)


def same_scope(a: Scope, b: Scope) -> bool:
    """Exact match: every field equal, unset only matching unset."""
    return (a.user_id or None, a.agent_id or None, a.run_id or None) == (
        b.user_id or None,
        b.agent_id or None,
        b.run_id or None,
    )
