"""The collaborators every stage is handed: configuration, record store, backends, hook chain."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import attrs
from lightmem_hookspecs import SchemaInPrompt

from ..backends import AccountedEmbedder, AccountedLLM, Backends
from ..config import LightMemConfig
from ..hookchain import HookChain
from .concurrency import ScopeLocks, SharedGate

if TYPE_CHECKING:
    from lightmem_hookspecs import EmbeddingRetriever, MemoryEntry, Operation, RecordStore

    from ..llm.prompts import Prompts
    from .graph import GraphStage

T = TypeVar("T")


#: Bare-text vectors a memory keeps (:class:`BareVectors`): the update passes and online
#: batches compare the same entries again and again.
VECTOR_CACHE = 50_000


class BareVectors:
    """Normalised bare-text vectors by (embedding model, text), at most ``limit``, oldest
    dropped first. One per memory (``Runtime.bare_vectors``), emptied when it closes."""

    def __init__(self, limit: int = VECTOR_CACHE) -> None:
        self.limit = limit
        self._vectors: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, model: str, text: str) -> Any:
        with self._lock:
            return self._vectors.get((model, text))

    def put(self, model: str, text: str, vector: Any) -> None:
        with self._lock:
            self._vectors[(model, text)] = vector
            self._vectors.move_to_end((model, text))
            while len(self._vectors) > self.limit:
                self._vectors.popitem(last=False)

    def __len__(self) -> int:
        return len(self._vectors)

    def clear(self) -> None:
        with self._lock:
            self._vectors.clear()


class EntryIndexes(Protocol):
    """What stages call on the index stage (:class:`~.index.Indexer` provides it)."""

    def open(self) -> None: ...

    def index(
        self, entries: Sequence[MemoryEntry], *, text_too: bool = True, defer: bool = False
    ) -> None: ...

    def flush(self) -> int: ...

    def unindex(self, ids: Sequence[str]) -> None: ...

    def reindex(self) -> int: ...


@attrs.define
class Runtime:
    """What one memory's stages share. Built by the facade; stages never import the facade."""

    config: LightMemConfig
    store: RecordStore
    backends: Backends
    hooks: HookChain
    #: Held while writing the journal, the entries and the indexes, and by searches; never
    #: across a model's inference (compression, segmentation, extraction, the update passes'
    #: embedding and LLM calls), so a search waits for a write, not for a model.
    lock: threading.RLock = attrs.field(factory=threading.RLock, init=False)
    #: Held by an offline update pass from start to end: one pass at a time works the queue.
    update_pass: threading.Lock = attrs.field(factory=threading.Lock, init=False)
    #: One lock per scope: the adds of a scope run one at a time (only the holder changes
    #: its buffers); adds of different scopes run side by side (``pipeline/concurrency.py``).
    scope_locks: ScopeLocks = attrs.field(factory=ScopeLocks, init=False)
    #: Held shared by ingestion, exclusively by an erase.
    gate: SharedGate = attrs.field(factory=SharedGate, init=False)
    #: Bounds the extraction calls in flight across scopes (``llm_concurrency``).
    llm_slots: threading.BoundedSemaphore = attrs.field(init=False)
    indexer: EntryIndexes = attrs.field(init=False)
    #: Bare-text vectors the update passes compare (emptied by :meth:`close`).
    bare_vectors: BareVectors = attrs.field(factory=BareVectors, init=False)
    _prompts: Prompts | None = attrs.field(default=None, init=False)
    _graph: GraphStage | None = attrs.field(default=None, init=False)

    @llm_slots.default
    def _slots(self) -> threading.BoundedSemaphore:
        return threading.BoundedSemaphore(self.config.llm_concurrency)

    @property
    def graph(self) -> GraphStage:
        """How entries reach the graph memories and how they answer queries."""
        if self._graph is None:
            from ..graph import GraphSettings
            from .graph import GraphStage

            options = self.config.graph
            settings = GraphSettings(
                hops=options.hops,
                fan_out=options.fan_out,
                similarity=options.similarity,
                fallback=options.fallback,
                expand=options.expand,
            )
            self._graph = GraphStage(embedder=self.embedder, settings=settings)
        return self._graph

    @property
    def embedder(self) -> AccountedEmbedder | None:
        return self.backends.text_embedder()

    @property
    def llm(self) -> AccountedLLM | None:
        return self.backends.memory_manager()

    @property
    def vector_index(self) -> EmbeddingRetriever | None:
        return self.backends.vector_index()

    @property
    def prompts(self) -> Prompts:
        if self._prompts is None:
            from ..llm.prompts import Prompts

            overrides = {k: v for k, v in attrs.asdict(self.config.prompts).items() if v}
            kv_cache = bool(self.config.kv_cache) and self.config.memory_manager is not None
            llm = self.llm if kv_cache else None
            stable = (
                llm is not None
                and isinstance(llm.backend, SchemaInPrompt)
                and llm.backend.schema_in_prompt is True
            )
            self._prompts = Prompts(**overrides, stable_schema=stable, cacheable=kv_cache)
        return self._prompts

    def close(self) -> None:
        """Free what this memory's stages keep in memory (the record store and backends are
        closed by the facade)."""
        self.bare_vectors.clear()

    def run(
        self, name: str, body: Callable[[], T], *, backend: str | None = None, **details: Any
    ) -> T:
        """Run ``body()`` as the operation ``name`` (seen by the selected wrapper hooks)."""
        return self.operation(name, body, backend=backend, **details)[0]

    def operation(
        self, name: str, body: Callable[[], T], *, backend: str | None = None, **details: Any
    ) -> tuple[T, Operation]:
        """Run ``body()`` as the operation ``name``; its result and the operation, whose usage
        totals the work nested in it. A top-level operation's usage is booked in the record
        store by the core's own wrapper (:class:`~lightmem_core.backends.UsageBooking`)."""
        result, op = self.hooks.run_operation(name, lambda op: body(), backend=backend, **details)
        return result, op

    def attempt(
        self, name: str, body: Callable[[], T], *, backend: str | None = None, **details: Any
    ) -> tuple[T | None, BaseException | None, Operation]:
        """Like :meth:`operation`, for work that may fail: ``(result, None, operation)``, or
        ``(None, error, operation)`` when ``body()`` raised (wrappers saw it raise), so the
        caller still reads what the failed attempt spent. An interrupt is not caught."""
        started: list[Operation] = []

        def call(op: Operation) -> T:
            started.append(op)
            return body()

        try:
            result, op = self.hooks.run_operation(name, call, backend=backend, **details)
        except (KeyboardInterrupt, SystemExit, GeneratorExit):
            raise
        except BaseException as exc:  # a backend's panic too
            if not started:
                raise
            return None, exc, started[0]
        return result, None, op
