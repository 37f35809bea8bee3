"""Who waits for whom during ingestion: tenants never wait for each other's models.

- :class:`ScopeLocks`: one lock per scope. The adds of one scope run one at a time (only the
  holder changes that scope's sensory and short-term buffers), in the order they took the
  lock; adds of different scopes run side by side, their models and LLM calls included.
- ``llm_concurrency`` (a semaphore on the runtime) bounds the extraction calls in flight at
  once, across all scopes.
- :class:`SharedGate`: ingestion (an add, a batch's extraction and commit) holds it shared;
  an erase holds it exclusively, so it waits for the ingestion in flight and holds new
  ingestion back until it is done (an extraction in flight cannot write a tenant back after
  its erase).

The memory's lock (``Runtime.lock``) still covers each write to the journal, the entries and
the indexes, so a search sees a write whole or not at all.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from lightmem_hookspecs import Scope

from ..scope import scope_key


class ScopeLocks:
    """A reentrant lock per scope, created on first use and dropped when no thread uses it."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._locks: dict[str, tuple[threading.RLock, int]] = {}

    @contextmanager
    def hold(self, scope: Scope) -> Iterator[None]:
        key = scope_key(scope)
        with self._mutex:
            lock, users = self._locks.get(key, (None, 0))
            if lock is None:
                lock = threading.RLock()
            self._locks[key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._mutex:
                lock, users = self._locks[key]
                if users == 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        with self._mutex:
            return len(self._locks)


class SharedGate:
    """A readers-writer lock: many shared holders or one exclusive holder. Shared holds nest
    within a thread. A waiting exclusive holder does not stop new shared ones: an add holding
    the gate may wait for a batch another thread has claimed and is about to extract (which
    takes the gate shared too); holding that thread back would deadlock the three."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._shared = 0
        self._exclusive: int | None = None  # the owning thread's id
        self._waiting = 0
        self._local = threading.local()

    @contextmanager
    def shared(self) -> Iterator[None]:
        depth = getattr(self._local, "depth", 0)
        me = threading.get_ident()
        if depth == 0 and self._exclusive != me:
            with self._cond:
                while self._exclusive is not None:
                    self._cond.wait()
                self._shared += 1
        self._local.depth = depth + 1
        try:
            yield
        finally:
            self._local.depth = depth
            if depth == 0 and self._exclusive != me:
                with self._cond:
                    self._shared -= 1
                    self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        me = threading.get_ident()
        if getattr(self._local, "depth", 0):
            raise RuntimeError("an exclusive hold inside a shared one would wait for itself")
        with self._cond:
            self._waiting += 1
            try:
                while self._exclusive is not None or self._shared:
                    self._cond.wait()
            finally:
                self._waiting -= 1
            self._exclusive = me
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = None
                self._cond.notify_all()
