"""LightMem on one Postgres: record store, pgvector embedding retriever, full-text retriever."""

from .errors import (
    AuthenticationFailedError,
    ExtensionMissingError,
    PostgresError,
    SchemaTooNewError,
    ServerUnreachableError,
)

__all__ = [
    "AuthenticationFailedError",
    "ExtensionMissingError",
    "PostgresError",
    "SchemaTooNewError",
    "ServerUnreachableError",
]
