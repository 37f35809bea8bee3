"""Retrying failed extraction batches off the hot path: backoff, claims, a background thread.

A batch whose extraction failed (the LLM was down, its answer was cut and could not be
recovered, ...) stays in the journal with a retry time ``now + backoff(attempts)``:
``retry_backoff`` seconds after the first failure, doubling each time up to
``retry_backoff_max``. It is retried

- by :meth:`BatchRetrier.run_due` in a background thread (``background_retry``, on by
  default) once its time has come, and only while no caller's own ``add`` is running, so a
  retry never goes ahead of a caller's work; the LLM call happens without the memory's lock,
  so searches never wait for a retry;
- or at once by ``LightMemory.retry()`` (every unfinished batch, whatever its retry time).

An ``add`` never retries other batches first. Claims make sure one batch is never processed by
two threads at a time.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from lightmem_hookspecs import SCHEDULED_STATES

log = logging.getLogger("lightmem")


def backoff(attempts: int, base: float, cap: float) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt (1, 2, ...)."""
    return min(cap, base * 2 ** max(0, min(attempts, 60) - 1))


def retry_time(attempts: int, base: float, cap: float) -> dt.datetime:
    """When the next attempt is due (see :func:`backoff`)."""
    return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=backoff(attempts, base, cap))


class BatchRetrier:
    """Claims batches and retries the due ones in a background thread.

    ``process(batch_id)`` extracts and commits one batch (it takes the memory's lock only to
    commit); ``store`` is the record store.
    """

    def __init__(
        self, store: Any, process: Callable[[str], Any], *, background: bool = True
    ) -> None:
        self.store = store
        self.process = process
        self.background = background
        self._claims: set[str] = set()
        self._claims_lock = threading.Condition()
        self._busy = 0
        self._idle = threading.Condition()
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    # -- claims and caller activity ----------------------------------------------------------

    @contextmanager
    def claim(self, batch_id: str, *, wait: bool = False) -> Iterator[bool]:
        """``True`` inside when this thread owns the batch; ``False`` when another does (with
        ``wait``, first wait for the other thread to finish with it, then own it)."""
        with self._claims_lock:
            while wait and batch_id in self._claims:
                self._claims_lock.wait()
            mine = batch_id not in self._claims
            if mine:
                self._claims.add(batch_id)
        try:
            yield mine
        finally:
            if mine:
                with self._claims_lock:
                    self._claims.discard(batch_id)
                    self._claims_lock.notify_all()

    @contextmanager
    def caller(self) -> Iterator[None]:
        """Mark a caller's own work: background retries wait until it is done."""
        with self._idle:
            self._busy += 1
        try:
            yield
        finally:
            with self._idle:
                self._busy -= 1
                self._idle.notify_all()

    def _wait_idle(self) -> bool:
        with self._idle:
            while self._busy and not self._closed.is_set():
                self._idle.wait(0.5)
        return not self._closed.is_set()

    # -- running -----------------------------------------------------------------------------

    def run(self, batch_ids: list[str], **options: Any) -> list[Any]:
        """Process these batches now, in this thread (``process(batch_id, **options)``); a batch
        another thread is processing is waited for, then processed here only if it is still
        unfinished."""
        results = []
        for batch_id in batch_ids:
            with self.claim(batch_id, wait=True):
                results.append(self.process(batch_id, **options))
        return results

    def run_due(self) -> int:
        """Retry the batches whose time has come (in this thread); returns how many ran."""
        done = 0
        due = self.store.batches(SCHEDULED_STATES, due_by=dt.datetime.now(dt.UTC))
        for batch_id in [b.id for b in due]:
            if not self._wait_idle():
                break
            with self.claim(batch_id) as mine:
                if mine:
                    self.process(batch_id)
                    done += 1
        return done

    def wake(self) -> None:
        """Something failed or is pending: make sure the background thread will look."""
        if not self.background or self._closed.is_set():
            return
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._loop, name="lightmem-retry", daemon=True)
            self._thread.start()
        self._wake.set()

    def _seconds_to_next(self) -> float | None:
        now = dt.datetime.now(dt.UTC)
        if self.store.batches(SCHEDULED_STATES, due_by=now):
            return 0.0
        next_at = self.store.next_retry_at()
        if next_at is None:
            return None
        return max(0.0, (next_at - now).total_seconds())

    def _loop(self) -> None:
        while not self._closed.is_set():
            try:
                wait = self._seconds_to_next()
            except Exception as exc:  # the store was closed under us: stop
                log.debug("retry thread stops: %s", exc)
                return
            if wait is None:
                self._wake.clear()
                self._wake.wait(60.0)
                continue
            if wait > 0:
                self._wake.clear()
                self._wake.wait(min(wait, 60.0))
                continue
            try:
                if self.run_due() == 0:
                    self._wake.clear()
                    self._wake.wait(0.2)
            except Exception as exc:
                if self._closed.is_set():
                    return
                log.warning("background retry of extraction batches failed: %s", exc)
                self._wake.wait(1.0)

    def close(self, timeout: float = 5.0) -> None:
        self._closed.set()
        self._wake.set()
        with self._idle:
            self._idle.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
