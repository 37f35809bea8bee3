"""A Postgres 16 + pgvector server for tests, benchmarks and local trials, from the ``pgserver``
wheel (``pip install 'lightmem-postgres[server]'``).

``local_server(data_dir)`` initialises the folder (first time), starts a server listening on a
Unix socket there and returns it (``server.cleanup()`` stops it); ``dsn(server)`` is its
connection string. ``temporary_server()`` does both in a fresh folder it removes afterwards.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def local_server(data_dir: str | Path) -> Any:
    try:
        import pgserver
    except ImportError as exc:
        raise RuntimeError(
            "the pgserver package is not installed: pip install 'lightmem-postgres[server]'"
        ) from exc
    return pgserver.get_server(Path(data_dir), cleanup_mode="stop")


def dsn(server: Any, database: str = "postgres") -> str:
    return str(server.get_uri(database))


@contextmanager
def server_folder() -> Iterator[Path]:
    """A data folder path in a fresh temporary folder, removed afterwards. Outside pytest's
    temporary tree on purpose: the server runs as its own system user when started by root and
    must reach the folder, and pytest prunes older runs' folders while a server may live."""
    parent = Path(tempfile.mkdtemp(prefix="lightmem-pg-"))
    parent.chmod(0o755)
    try:
        yield parent / "data"
    finally:
        shutil.rmtree(parent, ignore_errors=True)


@contextmanager
def temporary_server() -> Iterator[Any]:
    """A running server in a fresh folder; stopped and removed at the end."""
    with server_folder() as data:
        server = local_server(data)
        try:
            yield server
        finally:
            server.cleanup()
