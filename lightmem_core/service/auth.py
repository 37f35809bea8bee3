"""API keys of the service: who may act on which scopes.

The keys file is JSON mapping each key to what it may touch::

    {
      "key-a": {"user_ids": ["alice"]},
      "key-b": {"user_ids": ["bob"], "agent_ids": ["support"]},
      "sha256:9f86d08...": {"user_ids": ["carol"]},
      "ops": {"admin": true}
    }

A key written ``sha256:HEX`` is stored hashed (the hex SHA-256 of the key the client sends).
A grant lists the ``user_ids``, ``agent_ids`` and/or ``run_ids`` a key may use: a request's
scope must name a listed value for each field the grant lists (fields it does not list are
free). ``admin`` keys may act on any scope, on the whole memory (no scope) and on the
maintenance endpoints. When a request names no scope and its key lists exactly one
``user_id``, that user is the scope.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
from lightmem_hookspecs import Scope

from ..errors import ConfigError
from ..scope import SCOPE_FIELDS, is_unscoped
from .codec import AuthError, ForbiddenError

#: The environment variable holding the keys (the file's JSON) when no file is given.
KEYS_ENV = "LIGHTMEM_API_KEYS"


@attrs.frozen
class Grant:
    """What one key may touch."""

    admin: bool = False
    user_ids: frozenset[str] | None = None
    agent_ids: frozenset[str] | None = None
    run_ids: frozenset[str] | None = None

    def allowed(self, field: str) -> frozenset[str] | None:
        value: frozenset[str] | None = getattr(self, f"{field}s")
        return value

    def permits(self, scope: Scope) -> bool:
        if self.admin:
            return True
        if is_unscoped(scope):
            return False
        for field in SCOPE_FIELDS:
            allowed = self.allowed(field)
            if allowed is not None and getattr(scope, field) not in allowed:
                return False
        return True

    def default_scope(self, scope: Scope) -> Scope:
        """``scope``, or the key's only user when the request named no scope."""
        if is_unscoped(scope) and not self.admin and self.user_ids and len(self.user_ids) == 1:
            (user,) = self.user_ids
            return Scope(user, None, None)
        return scope


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@attrs.frozen
class Keys:
    """The API keys, by their SHA-256 digest (plain keys are hashed when loaded)."""

    by_digest: Mapping[str, Grant]

    @classmethod
    def parse(cls, data: Any, source: str = "keys") -> Keys:
        if not isinstance(data, Mapping) or not data:
            raise ConfigError("$: expected a JSON object mapping API keys to grants", source=source)
        grants: dict[str, Grant] = {}
        errors = []
        for key, spec in data.items():
            where = f"$[{json.dumps(key[:4] + '…', ensure_ascii=False)}]"
            if not isinstance(key, str) or len(key) < 8:
                errors.append(f"{where}: a key must be a string of at least 8 characters")
                continue
            if not isinstance(spec, Mapping):
                errors.append(f'{where}: expected an object like {{"user_ids": ["alice"]}}')
                continue
            unknown = sorted(set(spec) - {"admin", "user_ids", "agent_ids", "run_ids"})
            if unknown:
                errors.append(f"{where}: unknown key(s) {', '.join(unknown)}")
                continue
            admin = spec.get("admin", False)
            if not isinstance(admin, bool):
                errors.append(f"{where}.admin: expected true or false")
                continue
            lists: dict[str, frozenset[str] | None] = {}
            for field in ("user_ids", "agent_ids", "run_ids"):
                values = spec.get(field)
                if values is None:
                    lists[field] = None
                elif (
                    not isinstance(values, list)
                    or not values
                    or not all(isinstance(v, str) and v for v in values)
                ):
                    errors.append(f"{where}.{field}: expected a non-empty list of non-empty ids")
                else:
                    lists[field] = frozenset(values)
            if not admin and all(v is None for v in lists.values()):
                errors.append(
                    f"{where}: grants nothing; list user_ids (or agent_ids, run_ids) or set admin"
                )
                continue
            if key.startswith("sha256:"):
                digest = key.removeprefix("sha256:").lower()
                if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                    errors.append(f"{where}: a hashed key is sha256: and 64 hex digits")
                    continue
            else:
                digest = _digest(key)
            grants[digest] = Grant(admin=admin, **lists)
        if errors:
            raise ConfigError(errors, source=source)
        return cls(grants)

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None) -> Keys:
        """From the keys file, else from ``$LIGHTMEM_API_KEYS``; a :class:`ConfigError` if
        neither is given (the service does not run without keys)."""
        if path is not None:
            source = str(path)
            try:
                text = Path(path).read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(f"$: cannot read the keys file: {exc}", source=source) from exc
        elif os.environ.get(KEYS_ENV):
            source, text = f"${KEYS_ENV}", os.environ[KEYS_ENV]
        else:
            raise ConfigError(
                f"$: no API keys: pass --keys FILE or set {KEYS_ENV} (JSON mapping each key to "
                f"its scopes, e.g. "
                f'{{"key-a": {{"user_ids": ["alice"]}}, "ops": {{"admin": true}}}})'
            )
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"$: not JSON: {exc}", source=source) from exc
        return cls.parse(data, source)

    def grant(self, authorization: str | None) -> Grant:
        """The grant of an ``Authorization: Bearer KEY`` header; :class:`AuthError` if none."""
        if not authorization:
            raise AuthError("missing API key: send Authorization: Bearer KEY")
        scheme, _, key = authorization.partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            raise AuthError("malformed Authorization header: send Authorization: Bearer KEY")
        digest = _digest(key)
        for known, grant in self.by_digest.items():
            if hmac.compare_digest(known, digest):
                return grant
        raise AuthError("unknown API key")


def require(grant: Grant, scope: Scope) -> Scope:
    """The scope a request acts on (the key's default filled in); :class:`ForbiddenError` if
    the key may not act on it. The message is the same whether or not the scope has data."""
    scope = grant.default_scope(scope)
    if not grant.permits(scope):
        if is_unscoped(scope):
            raise ForbiddenError("this API key must name a scope it is granted (user_id=...)")
        raise ForbiddenError("this API key is not granted that scope")
    return scope


def require_admin(grant: Grant) -> None:
    if not grant.admin:
        raise ForbiddenError("this call needs an admin API key")
