"""One owner per memory directory: an OS file lock (``flock``) on ``<memory_dir>/lightmem.lock``.

The embedded stores (SQLite journal, local vector store) are meant for one process. A second
``LightMemory`` on a directory in use, in this process or another, fails in its constructor
with :class:`~lightmem_core.errors.MemoryDirInUseError` naming the owner's process id, before
anything is written; or it waits up to ``lock_timeout`` seconds for the owner to close. The
lock belongs to the open file, so the OS releases it when the owner exits, however it exits
(``kill -9`` included): a stale lock file never blocks anyone. Several processes share memory
through server-backed stores, not one directory.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from .errors import ConfigError, ConfigProblem, MemoryDirInUseError, StoreError

LOCK_NAME = "lightmem.lock"


class DirectoryOwner:
    """Holds the lock of one memory directory until :meth:`release`."""

    def __init__(self, memory_dir: str | os.PathLike[str], *, timeout: float = 0.0) -> None:
        self.path = Path(memory_dir) / LOCK_NAME
        self._fd: int | None = None
        self._acquire(timeout)

    def _acquire(self, timeout: float) -> None:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no lock, one owner is on trust
            return
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreError(
                f"cannot create the lock file {self.path}: {exc}. Check that memory_dir is a "
                f"writable folder."
            ) from exc
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    pid = _read_pid(fd)
                    os.close(fd)
                    who = f"process {pid}" if pid is not None else "another process"
                    if pid == os.getpid():
                        who += " (this process: close the other LightMemory first)"
                    raise MemoryDirInUseError(
                        f"the memory directory {self.path.parent} is in use by {who}. One "
                        f"process owns a memory directory: close it there, give this one "
                        f"another memory_dir, set lock_timeout to wait, or share memory "
                        f"through a server-backed store.",
                        pid=pid,
                        path=str(self.path.parent),
                    ) from None
                time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
            except OSError as exc:
                os.close(fd)
                raise StoreError(f"cannot lock {self.path}: {exc}") from exc
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the file releases the lock

    def __del__(self) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 64).decode("ascii", "replace").strip()
        return int(text) if text.isdigit() else None
    except OSError:
        return None


def claim_memory_dir(config: Any) -> DirectoryOwner:
    """Create ``config.memory_dir`` if needed and take ownership of it (see the module docs)."""
    memory_dir = Path(config.memory_dir)
    if memory_dir.exists() and not memory_dir.is_dir():
        raise ConfigError(
            ConfigProblem(
                "$.memory_dir", f"{str(memory_dir)!r} is a file, not a folder", "choose a folder"
            )
        )
    try:
        memory_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            ConfigProblem(
                "$.memory_dir",
                f"cannot create the folder {str(memory_dir)!r}: {exc}",
                "choose a folder this process may write in",
            )
        ) from exc
    db_parent = Path(config.db_path).parent
    if db_parent.exists() and not db_parent.is_dir():
        raise ConfigError(
            ConfigProblem(
                "$.history_db_path",
                f"{str(db_parent)!r} is not a folder",
                "name a file in an existing folder, or leave history_db_path out",
            )
        )
    return DirectoryOwner(memory_dir, timeout=config.lock_timeout)
