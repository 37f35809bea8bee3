"""The plugin's errors. Each names the server (host and port, or socket folder) and database,
never the password, and says what to do. The core reports them as ``BackendError`` with this
error chained."""

from __future__ import annotations


class PostgresError(RuntimeError):
    """A Postgres backend cannot do its work."""


class ServerUnreachableError(PostgresError):
    """No connection to the server: it is down, the address is wrong, or it went away while an
    operation ran (then the operation did not commit)."""


class AuthenticationFailedError(PostgresError):
    """The server refused the user name or password."""


class ExtensionMissingError(PostgresError):
    """The ``vector`` extension (pgvector) is not installed in the database and this user
    cannot create it."""


class SchemaTooNewError(PostgresError):
    """The tables were written by a newer lightmem-postgres than this one."""
