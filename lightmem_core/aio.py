"""``AsyncLightMemory``: the public API of :class:`~lightmem_core.memory.LightMemory` as
coroutines, for asyncio applications.

Every call runs the synchronous memory on a thread pool the async memory owns, so model
inference, SQLite work and index I/O never run on the event loop. Writes are ordered:

- the adds of one scope (``add``, ``add_memory``, ``flush``) are applied in the order the
  tasks called them (each scope has a first-in, first-out queue), while adds of different
  scopes run side by side;
- changes to existing entries (``update``, ``delete``, ``erase``, the update passes,
  ``retry``, ``reindex``) are applied one at a time, in call order;
- reads (``search``, ``get``, ``get_all``, ``history``, ``stats``) never wait for the queues;
  the memory's own lock lets a search see either all or nothing of a write.

``close()`` (or leaving ``async with``) waits for the calls already started, then closes the
memory. A call made after ``close()`` raises :class:`~lightmem_core.errors.InputError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import os
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from lightmem_hookspecs import EntryChange, MemoryEntry, SearchFilter, SearchHit

from .errors import InputError
from .scope import make_scope, scope_key

if TYPE_CHECKING:
    from .config import LightMemConfig
    from .memory import LightMemory
    from .pipeline.ingest import AddResult
    from .plugins import PluginHost

T = TypeVar("T")

__all__ = ["AsyncLightMemory"]

#: Threads an async memory runs its calls on, unless told otherwise.
DEFAULT_WORKERS = 16


class _Queue:
    """The callers of one scope's writes: first come, first served."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


class AsyncLightMemory:
    """Long-term memory for asyncio code: the same calls as ``LightMemory``, awaited.

    Build it like ``LightMemory`` (a configuration mapping, a ``LightMemConfig``, ``host=``,
    ``memory_dir=``); the memory opens on first use or on ``async with``. :meth:`wrap` puts an
    existing ``LightMemory`` behind the async API. ``workers`` bounds the threads calls run on.
    """

    def __init__(
        self,
        config: Mapping[str, Any] | LightMemConfig | None = None,
        *,
        host: PluginHost | None = None,
        memory_dir: str | os.PathLike[str] | None = None,
        workers: int = DEFAULT_WORKERS,
    ) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise InputError(f"workers: expected a positive integer, got {workers!r}")
        self._config = config
        self._host = host
        self._memory_dir = memory_dir
        self._memory: LightMemory | None = None
        self._owns_memory = True
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="lightmem-async")
        self._opening: asyncio.Lock | None = None
        self._scope_locks: dict[str, _Queue] = {}
        self._entry_lock: asyncio.Lock | None = None
        self._running = 0
        self._idle: asyncio.Event | None = None
        self._closed = False

    @classmethod
    def wrap(cls, memory: LightMemory, *, workers: int = DEFAULT_WORKERS) -> AsyncLightMemory:
        """The async API over an open ``memory``; ``close()`` closes it too."""
        amem = cls(workers=workers)
        amem._memory = memory
        return amem

    @classmethod
    def from_config(
        cls,
        config: Mapping[str, Any] | LightMemConfig | str | os.PathLike[str] | None = None,
        *,
        host: PluginHost | None = None,
        workers: int = DEFAULT_WORKERS,
    ) -> AsyncLightMemory:
        """Like ``LightMemory.from_config``: a configuration mapping or a file path."""
        if isinstance(config, str | os.PathLike):
            from .config import load_config_file

            config = load_config_file(config)
        return cls(config, host=host, workers=workers)

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> AsyncLightMemory:
        """Build the memory (plugins, record store, backends) off the event loop."""
        if self._closed:
            raise InputError("this AsyncLightMemory is closed; build a new one")
        if self._memory is not None:
            return self
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._memory is None:
                from .memory import LightMemory

                self._memory = await self._offload(
                    functools.partial(
                        LightMemory, self._config, host=self._host, memory_dir=self._memory_dir
                    )
                )
        return self

    async def close(self) -> None:
        """Wait for the calls already started, then close the memory and the thread pool."""
        if self._closed:
            return
        self._closed = True
        if self._running and self._idle is not None:
            await self._idle.wait()
        memory, self._memory = self._memory, None
        try:
            if memory is not None and self._owns_memory:
                await self._offload(memory.close)
        finally:
            self._executor.shutdown(wait=False)

    async def __aenter__(self) -> AsyncLightMemory:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def memory(self) -> LightMemory:
        """The synchronous memory underneath (open it first)."""
        if self._memory is None:
            raise InputError("the memory is not open: `await mem.open()` or `async with mem`")
        return self._memory

    # -- running calls ---------------------------------------------------------------------

    async def _offload(self, call: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        ctx = contextvars.copy_context()
        return await loop.run_in_executor(self._executor, ctx.run, call)

    @contextlib.asynccontextmanager
    async def _started(self, name: str) -> AsyncIterator[LightMemory]:
        """A call from its start (queued included) to its end; ``close()`` waits for it."""
        if self._closed:
            raise InputError(f"{name}: this AsyncLightMemory is closed")
        if self._idle is None:
            self._idle = asyncio.Event()
        self._running += 1
        self._idle.clear()
        try:
            if self._memory is None:
                await self.open()
            yield self.memory
        finally:
            self._running -= 1
            if not self._running:
                self._idle.set()

    async def _run(self, name: str, *args: Any, **kwargs: Any) -> Any:
        async with self._started(name) as memory:
            return await self._offload(functools.partial(getattr(memory, name), *args, **kwargs))

    async def _write_scope(self, name: str, scope: Any, *args: Any, **kwargs: Any) -> Any:
        async with self._started(name) as memory:
            key = scope_key(scope)
            queue = self._scope_locks.get(key)
            if queue is None:
                queue = self._scope_locks[key] = _Queue()
            queue.users += 1
            try:
                async with queue.lock:  # asyncio.Lock wakes its waiters first come, first served
                    call = functools.partial(getattr(memory, name), *args, **kwargs)
                    return await self._offload(call)
            finally:
                queue.users -= 1
                if not queue.users:
                    del self._scope_locks[key]

    async def _write_entries(self, name: str, *args: Any, **kwargs: Any) -> Any:
        async with self._started(name) as memory:
            if self._entry_lock is None:
                self._entry_lock = asyncio.Lock()
            async with self._entry_lock:
                call = functools.partial(getattr(memory, name), *args, **kwargs)
                return await self._offload(call)

    # -- ingestion -------------------------------------------------------------------------

    async def add_memory(
        self,
        messages: Any,
        force_segment: bool = False,
        force_extract: bool = False,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        dry_run: bool = False,
        token_budget: int | None = None,
    ) -> Any:
        """``LightMemory.add_memory``: messages into the buffers of their scope, in call order."""
        scope = make_scope(user_id, agent_id, run_id)
        return await self._write_scope(
            "add_memory",
            scope,
            messages,
            force_segment,
            force_extract,
            user_id=user_id,
            agent_id=agent_id,
            run_id=run_id,
            dry_run=dry_run,
            token_budget=token_budget,
        )

    async def estimate(
        self,
        messages: Any,
        force_segment: bool = False,
        force_extract: bool = False,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        token_budget: int | None = None,
    ) -> Any:
        """``LightMemory.estimate``: what an ``add_memory`` would spend; writes nothing."""
        return await self._run(
            "estimate",
            messages,
            force_segment,
            force_extract,
            user_id=user_id,
            agent_id=agent_id,
            run_id=run_id,
            token_budget=token_budget,
        )

    async def add(
        self,
        messages: Any,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
    ) -> AddResult:
        """``LightMemory.add``: add and flush, so the memories are searchable on return."""
        scope = make_scope(user_id, agent_id, run_id)
        result: AddResult = await self._write_scope(
            "add", scope, messages, user_id=user_id, agent_id=agent_id, run_id=run_id
        )
        return result

    async def flush(
        self, *, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None
    ) -> AddResult:
        """``LightMemory.flush``: segment and extract what the buffers of a scope hold."""
        scope = make_scope(user_id, agent_id, run_id)
        result: AddResult = await self._write_scope(
            "flush", scope, user_id=user_id, agent_id=agent_id, run_id=run_id
        )
        return result

    async def retry(self) -> AddResult:
        """``LightMemory.retry``: retry every pending or failed extraction batch now."""
        result: AddResult = await self._write_entries("retry")
        return result

    async def flush_vectors(self) -> int:
        """``LightMemory.flush_vectors``: write the queued vectors now."""
        written: int = await self._run("flush_vectors")
        return written

    async def pending_batches(self) -> list[Any]:
        """``LightMemory.pending_batches``: every extraction batch not extracted yet."""
        batches: list[Any] = await self._run("pending_batches")
        return batches

    # -- retrieval -------------------------------------------------------------------------

    async def search(
        self,
        query: str,
        limit: int = 10,
        *,
        strategy: str | None = None,
        filters: SearchFilter | Mapping[str, Any] | None = None,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        retrievers: Sequence[str] | None = None,
    ) -> list[SearchHit]:
        """``LightMemory.search``: scored hits for ``query``."""
        hits: list[SearchHit] = await self._run(
            "search",
            query,
            limit,
            strategy=strategy,
            filters=filters,
            user_id=user_id,
            agent_id=agent_id,
            run_id=run_id,
            retrievers=retrievers,
        )
        return hits

    async def retrieve(
        self,
        query: str,
        limit: int = 10,
        filters: SearchFilter | Mapping[str, Any] | None = None,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
    ) -> list[str]:
        """``LightMemory.retrieve``: the top memories as strings with time stamp and weekday."""
        lines: list[str] = await self._run(
            "retrieve", query, limit, filters, user_id=user_id, agent_id=agent_id, run_id=run_id
        )
        return lines

    # -- entries ---------------------------------------------------------------------------

    async def get(self, entry_id: str) -> MemoryEntry | None:
        """``LightMemory.get``: the entry, or ``None``."""
        entry: MemoryEntry | None = await self._run("get", entry_id)
        return entry

    async def get_all(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        include_inactive: bool = False,
    ) -> list[MemoryEntry]:
        """``LightMemory.get_all``: the entries of a scope."""
        entries: list[MemoryEntry] = await self._run(
            "get_all",
            user_id=user_id,
            agent_id=agent_id,
            run_id=run_id,
            include_inactive=include_inactive,
        )
        return entries

    async def history(self, entry_id: str | None = None) -> list[dict[str, Any]]:
        """``LightMemory.history``: every change of an entry (or of all), oldest first."""
        rows: list[dict[str, Any]] = await self._run("history", entry_id)
        return rows

    async def update(
        self, entry_id: str, memory: str, reason: str = "updated by the application"
    ) -> MemoryEntry:
        """``LightMemory.update``: new text for an active entry (applied in call order)."""
        entry: MemoryEntry = await self._write_entries("update", entry_id, memory, reason)
        return entry

    async def delete(self, entry_id: str, reason: str = "deleted by the application") -> None:
        """``LightMemory.delete``: retire an active entry (applied in call order)."""
        await self._write_entries("delete", entry_id, reason)

    async def erase(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
    ) -> Any:
        """``LightMemory.erase``: every trace of the matching scopes removed; a receipt."""
        return await self._write_entries("erase", user_id=user_id, agent_id=agent_id, run_id=run_id)

    # -- update passes and maintenance -----------------------------------------------------

    async def construct_update_queue_all_entries(
        self, top_k: int = 20, keep_top_n: int = 10
    ) -> int:
        """``LightMemory.construct_update_queue_all_entries``."""
        size: int = await self._write_entries(
            "construct_update_queue_all_entries", top_k, keep_top_n
        )
        return size

    async def offline_update_all_entries(self, score_threshold: float = 0.8) -> list[EntryChange]:
        """``LightMemory.offline_update_all_entries``: the sleep-time update pass."""
        changes: list[EntryChange] = await self._write_entries(
            "offline_update_all_entries", score_threshold
        )
        return changes

    async def reindex(self) -> int:
        """``LightMemory.reindex``: rebuild every derived index from the record store."""
        count: int = await self._write_entries("reindex")
        return count

    async def warm_up(self) -> None:
        """``LightMemory.warm_up``: load the embedding model and open the indexes now."""
        await self._run("warm_up")

    async def run_operation(self, name: str, body: Callable[[], Any], **details: Any) -> Any:
        """``LightMemory.run_operation``: ``body()`` runs on the memory's thread pool."""
        return await self._run("run_operation", name, body, **details)

    async def get_token_statistics(self) -> dict[str, Any]:
        """``LightMemory.get_token_statistics``."""
        stats: dict[str, Any] = await self._run("get_token_statistics")
        return stats

    async def stats(self) -> dict[str, Any]:
        """``LightMemory.stats``: counts, usage, backends and chains."""
        stats: dict[str, Any] = await self._run("stats")
        return stats

    async def graph_show(
        self,
        entity: str,
        depth: int = 1,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
    ) -> list[str]:
        """``LightMemory.graph_show``."""
        lines: list[str] = await self._run(
            "graph_show", entity, depth, user_id=user_id, agent_id=agent_id, run_id=run_id
        )
        return lines

    async def graph_export(
        self,
        format: str = "json",
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
    ) -> str:
        """``LightMemory.graph_export``."""
        text: str = await self._run(
            "graph_export", format, user_id=user_id, agent_id=agent_id, run_id=run_id
        )
        return text
