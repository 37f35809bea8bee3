"""Connection settings without the password: masking for ``repr`` and messages (stdlib only)."""

from __future__ import annotations

import os
import re

#: Read when no ``dsn`` is configured; libpq's own variables (``PGHOST``, ``PGUSER``,
#: ``PGPASSWORD``, ``PGSSLMODE``, ...) and ``~/.pgpass`` apply as well, as they do for psql.
ENV_DSN = "LIGHTMEM_POSTGRES_DSN"

_URL_USERINFO = re.compile(r"^(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/?#@]*):[^@/?#]*@")
_URL_PARAM = re.compile(r"(?P<head>[?&]password=)[^&#]*", re.I)
_KEYWORD = re.compile(r"(?P<head>\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.I)


def mask_dsn(dsn: str | None) -> str | None:
    """``dsn`` with any password replaced by ``***`` (URL and ``key=value`` forms)."""
    if dsn is None:
        return None
    masked = _URL_USERINFO.sub(r"\g<head>:***@", dsn)
    masked = _URL_PARAM.sub(r"\g<head>***", masked)
    return _KEYWORD.sub(r"\g<head>***", masked)


def masked_repr(dsn: str | None) -> str:
    return repr(mask_dsn(dsn))


def configured_dsn(dsn: str | None) -> str:
    """The configured DSN, else ``$LIGHTMEM_POSTGRES_DSN``, else ``""`` (libpq's defaults and
    ``PG*`` variables)."""
    if dsn is not None:
        return dsn
    return os.environ.get(ENV_DSN, "")


def scrub(text: str, *secrets: str | None) -> str:
    """``text`` with every secret (a password) replaced by ``***``; DSNs in it masked."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return mask_dsn(text) or ""
