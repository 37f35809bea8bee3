"""Builds the configured backends through the registry and wraps them for usage accounting."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Generator, Mapping, Sequence
from typing import Any

import attrs
from lightmem_hookspecs import (
    CONTRACT_VERSION,
    KINDS_BY_NAME,
    PROTOCOLS,
    AnswerLimit,
    BackendContext,
    CacheStats,
    Closeable,
    Completion,
    ContextRetriever,
    EmbeddingRetriever,
    GraphMemory,
    Operation,
    PreCompressor,
    RecordStore,
    Reranker,
    TopicSegmenter,
    Usage,
    hookimpl,
)

from .config import ResolvedBackend, ResolvedConfig
from .errors import BackendError, LightMemError, PluginContractError
from .hookchain import HookChain

log = logging.getLogger("lightmem")

#: Operations whose usage is booked under their own name wherever they run (the phases
#: ``get_token_statistics()`` reports); the rest of the work inside a top-level operation is
#: booked under the top-level operation's name.
BOOKED_OPERATIONS = frozenset({"add_memory", "extract", "update", "retrieve"})
#: Top-level operations booked under another name: the vectors a flush writes are ingestion's
#: work, wherever the flush happens (before a search, on close).
BOOKED_AS = {"index": "add_memory"}


#: The usage of an operation that spent nothing (never changed).
_NOTHING = Usage()


def _minus(a: Usage, b: Usage) -> Usage:
    return Usage(**{f.name: getattr(a, f.name) - getattr(b, f.name) for f in attrs.fields(Usage)})


@attrs.define
class _Booked:
    """What the booked operations nested in one operation account for so far."""

    by_name: dict[str, Usage] = attrs.field(factory=dict)
    total: Usage = attrs.field(factory=Usage)

    def add(self, name: str, usage: Usage) -> None:
        self.by_name.setdefault(name, Usage()).add(usage)

    def merge(self, other: _Booked) -> None:
        for name, usage in other.by_name.items():
            self.add(name, usage)
        self.total.add(other.total)


class UsageBooking:
    """The core's own ``lightmem_run_operation`` wrapper, outermost for every memory.

    Each operation's usage totals the work nested in it (the operation tree); when a
    top-level operation ends, its usage is written to the record store once, split between
    the booked operations inside it (:data:`BOOKED_OPERATIONS`) and itself. Nothing is read
    back to compute a delta. A top-level operation with the detail ``dry_run`` is not booked.
    """

    def __init__(self, store: RecordStore | None = None) -> None:
        #: Where usage is booked (set once the memory's record store is open).
        self.store = store
        self._inside: dict[int, _Booked] = {}
        self._lock = threading.Lock()

    @hookimpl(wrapper=True)
    def lightmem_run_operation(self, operation: Operation) -> Generator[None, Any, Any]:
        try:
            return (yield)
        finally:
            self._ended(operation)

    def _ended(self, operation: Operation) -> None:
        with self._lock:
            booked = self._inside.pop(id(operation), None)
        if booked is None:
            if operation.usage == _NOTHING:
                return  # nothing spent inside it: nothing to book or hand up
            booked = _Booked()
        parent = operation.parent
        name = BOOKED_AS.get(operation.name, operation.name) if parent is None else operation.name
        if parent is None or name in BOOKED_OPERATIONS:
            booked.add(name, _minus(operation.usage, booked.total))
            booked.total = Usage(**attrs.asdict(operation.usage))
        if parent is not None:
            with self._lock:
                self._inside.setdefault(id(parent), _Booked()).merge(booked)
            return
        if self.store is None or operation.details.get("dry_run"):
            return  # a dry run's local stages (pipeline/local.py) spend nothing on the books
        for booked_name, usage in booked.by_name.items():
            if usage != Usage():
                try:
                    self.store.add_usage(booked_name, usage)
                except Exception as exc:  # the store was closed under a late operation
                    log.warning("usage of %s not booked: %s", booked_name, exc)


#: Bytes of recent vectors an embedder keeps, so that a text is encoded once: turns the topic
#: segmenter embedded are not encoded again when their entries are indexed, nor a memory again
#: by the update pass, nor a repeated query (16 MB: ~10 k MiniLM vectors).
RECENT_VECTOR_BYTES = 16 << 20


class AccountedEmbedder:
    """A text embedder whose calls run as ``embed`` operations and are counted.

    It remembers the vectors of the texts it encoded last (:data:`RECENT_VECTOR_BYTES`): a text
    met again is not encoded again, and is not counted as embedded.
    """

    def __init__(self, backend: Any, name: str, hooks: HookChain) -> None:
        self.backend, self.name, self.hooks = backend, name, hooks
        self.model_name = getattr(backend, "model_name", name)
        self._recent: OrderedDict[str, Any] = OrderedDict()
        self._recent_lock = threading.Lock()

    @property
    def dimension(self) -> int:
        return int(self.backend.dimension)

    def warm_up(self) -> None:
        """Load the model (outside any timing or accounting)."""
        self.backend.embed(["warm-up"])

    def close(self) -> None:
        with self._recent_lock:
            self._recent.clear()
        if isinstance(self.backend, Closeable):
            self.backend.close()

    def embed(self, texts: Sequence[str]) -> Any:
        import numpy as np

        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._recent_lock:
            known = {t: self._recent[t] for t in texts if t in self._recent}
            for text in known:
                self._recent.move_to_end(text)
        missing = list(dict.fromkeys(t for t in texts if t not in known))
        if missing:
            found = self._encode(missing)
            self._remember(missing, found)
            known.update(zip(missing, found, strict=True))
        return np.stack([known[t] for t in texts])

    def _encode(self, texts: list[str]) -> Any:
        import numpy as np

        def call(op: Operation) -> Any:
            vectors = np.asarray(self.backend.embed(texts), dtype=np.float32)
            op.usage.embedder_calls += 1
            op.usage.embedded_texts += len(texts)
            return vectors

        vectors, _ = self.hooks.run_operation("embed", call, backend=self.name, texts=len(texts))
        if vectors.shape != (len(texts), self.dimension):
            raise BackendError(
                f"text_embedder {self.name!r} returned an array of shape {vectors.shape} for "
                f"{len(texts)} texts; expected ({len(texts)}, {self.dimension})"
            )
        return vectors

    def _remember(self, texts: list[str], vectors: Any) -> None:
        keep = max(1, RECENT_VECTOR_BYTES // max(1, int(vectors.shape[1]) * 4))
        with self._recent_lock:
            for text, vector in zip(texts[-keep:], vectors[-keep:], strict=True):
                self._recent[text] = vector.copy()  # not a view pinning the whole array
                self._recent.move_to_end(text)
            while len(self._recent) > keep:
                self._recent.popitem(last=False)


class AccountedLLM:
    """A memory manager whose calls run as ``llm.complete`` operations and are counted."""

    def __init__(self, backend: Any, name: str, hooks: HookChain) -> None:
        self.backend, self.name, self.hooks = backend, name, hooks
        self.model_name = getattr(backend, "model_name", name)
        self._cache_lock = threading.Lock()
        self._cache = {"llm_calls": 0, "hits": 0, "prompt_tokens": 0, "cached_prompt_tokens": 0}

    def close(self) -> None:
        if isinstance(self.backend, Closeable):
            self.backend.close()

    @property
    def max_tokens(self) -> int | None:
        """The backend's declared answer limit (``AnswerLimit``), else ``None``."""
        return self.backend.max_tokens if isinstance(self.backend, AnswerLimit) else None

    def cache_stats(self) -> dict[str, Any]:
        """KV cache counters since this memory was opened: calls, calls that reused cached
        prompt tokens (hits), prompt tokens, and prompt tokens a cache held (not evaluated
        again); plus the backend's own counters under ``backend`` where it offers them
        (:class:`~lightmem_hookspecs.CacheStats`)."""
        with self._cache_lock:
            stats: dict[str, Any] = dict(self._cache)
        if isinstance(self.backend, CacheStats):
            stats["backend"] = self.backend.cache_stats()
        return stats

    def _count_cache(self, result: Completion) -> None:
        cached = int(getattr(result, "cached_tokens", 0) or 0)
        with self._cache_lock:
            self._cache["llm_calls"] += 1
            self._cache["prompt_tokens"] += result.prompt_tokens
            self._cache["cached_prompt_tokens"] += cached
            self._cache["hits"] += cached > 0

    def complete(
        self,
        messages: Sequence[Mapping[str, str]],
        *,
        json_schema: Mapping[str, Any] | None = None,
        max_tokens: int | None = None,
    ) -> Completion:
        def call(op: Operation) -> Completion:
            op.usage.llm_calls += 1
            try:
                result = self.backend.complete(
                    messages, json_schema=json_schema, max_tokens=max_tokens
                )
            except LightMemError:
                raise
            except Exception as exc:
                raise BackendError(
                    f"memory_manager {self.name!r} failed: {type(exc).__name__}: {exc}"
                ) from exc
            op.usage.prompt_tokens += result.prompt_tokens
            op.usage.completion_tokens += result.completion_tokens
            self._count_cache(result)
            return result

        result, _ = self.hooks.run_operation("llm.complete", call, backend=self.name)
        completion: Completion = result
        return completion


def check_protocol(backend: Any, kind: str, path: str, registration: Any, host: Any) -> None:
    """Raise :class:`PluginContractError` naming the members of its kind's Protocol that a
    freshly built ``backend`` lacks, with the plugin and the contract versions."""
    from .plugins import missing_members

    protocol = PROTOCOLS[kind]
    if isinstance(backend, protocol):
        return
    missing = missing_members(backend, protocol)
    info = host.plugins.get(registration.plugin)
    plugin = f"plugin {registration.plugin!r}"
    if info is not None and info.distribution:
        plugin += f" ({info.distribution} {info.version or ''})".replace(" )", ")")
    built_for = info.contract if info is not None else None
    versions = (
        f"it was built for contract {built_for}, this LightMem runs {CONTRACT_VERSION}"
        if built_for
        else f"it does not say which contract it was built for; this LightMem runs "
        f"{CONTRACT_VERSION}"
    )
    raise PluginContractError(
        f"{path}: {kind} backend {registration.name!r} from {plugin} does not implement "
        f"{protocol.__name__}: {type(backend).__name__} lacks "
        f"{', '.join(missing) if missing else 'nothing by name (a member is not callable)'}. "
        f"{versions}. Update the plugin, or select another {kind} backend."
    )


@attrs.frozen
class Retriever:
    """A built element of the retrieval chain."""

    label: str
    kind: str
    name: str
    weight: float
    backend: Any
    query_by: str  # "vector" or "text"


def build_record_store(resolved: ResolvedConfig, store_backend: ResolvedBackend) -> RecordStore:
    """The configured record store, built before every other backend (usage is booked in it)."""
    config, registration, path = resolved.config, store_backend.registration, store_backend.path
    context = BackendContext(
        memory_dir=config.memory_dir,
        settings={"db_path": str(config.db_path)},
        instance="record_store",
    )
    try:
        store = registration.factory(store_backend.options, context)
    except LightMemError:
        raise
    except Exception as exc:
        raise BackendError(
            f"{path}: building record_store backend {registration.name!r} (plugin "
            f"{registration.plugin}) failed: {type(exc).__name__}: {exc}"
        ) from exc
    check_protocol(store, "record_store", path, registration, resolved.host)
    built: RecordStore = store
    return built


class Backends:
    """The backends one configuration selects, built on demand through their factories.

    Typed accessors return the built backends by role; ``get(kind)`` stays for factories that
    ask for another backend through :class:`~lightmem_hookspecs.BackendContext`.
    """

    def __init__(self, resolved: ResolvedConfig, hooks: HookChain) -> None:
        self.resolved, self.config, self.hooks = resolved, resolved.config, hooks
        # Every backend a memory builds, by kind, in order; the record store is built first,
        # by build_record_store, before any other backend.
        self._selected: dict[str, list[ResolvedBackend]] = {
            kind: resolved.of_kind(kind) for kind in PROTOCOLS if kind != "record_store"
        }
        self._selected["record_store"] = []
        self._labels = {r.path: r.label for r in resolved.retrievers}
        self._built: dict[str, Any] = {}  # by the backend's configuration path
        self._building: dict[str, threading.Lock] = {}  # one per path being built
        self._shared: dict[str, Any] = {}  # one dict for all factories (precomp_topic_shared)
        self._lock = threading.Lock()

    def _context(self, path: str) -> BackendContext:
        return BackendContext(
            memory_dir=self.config.memory_dir,
            precomp_topic_shared=self.config.precomp_topic_shared,
            shared=self._shared,
            get_backend=self.get,
            settings={
                "messages_use": self.config.messages_use,
                "kv_cache": bool(self.config.kv_cache),
                "kv_cache_path": str(self.config.kv_cache_dir),
            },
            instance=self._labels.get(path, path.removeprefix("$.")),
        )

    # -- names -----------------------------------------------------------------------------

    def names(self, kind: str) -> list[str]:
        return [b.name for b in self._selected[kind]]

    def configured(self) -> dict[str, list[str]]:
        """The names of the configured backends, by kind (kinds with none left out)."""
        return {kind: self.names(kind) for kind in PROTOCOLS if self._selected[kind]}

    def chain_description(self) -> dict[str, Any]:
        """The resolved chains, for ``lightmem config check`` and ``stats``."""
        return self.resolved.chains(self.hooks.plugins)

    # -- typed access ----------------------------------------------------------------------

    def get(self, kind: str) -> Any:
        """The (first) configured backend of ``kind``, or ``None``."""
        chain = self.chain(kind)
        return chain[0] if chain else None

    def chain(self, kind: str) -> list[Any]:
        """Every configured backend of ``kind``, in configuration order."""
        return [self._build(b) for b in self._selected[kind]]

    def text_embedder(self) -> AccountedEmbedder | None:
        embedder: AccountedEmbedder | None = self.get("text_embedder")
        return embedder

    def memory_manager(self) -> AccountedLLM | None:
        llm: AccountedLLM | None = self.get("memory_manager")
        return llm

    def topic_segmenter(self) -> TopicSegmenter | None:
        segmenter: TopicSegmenter | None = self.get("topic_segmenter")
        return segmenter

    def pre_compressors(self) -> list[tuple[str, PreCompressor]]:
        return list(zip(self.names("pre_compressor"), self.chain("pre_compressor"), strict=True))

    def rerankers(self) -> list[tuple[str, Reranker]]:
        return list(zip(self.names("reranker"), self.chain("reranker"), strict=True))

    def retrievers(self) -> list[Retriever]:
        """The retrieval chain's elements, built, in configuration order."""
        out = []
        for r in self.resolved.retrievers:
            backend = self._build(r.backend)
            query_by = KINDS_BY_NAME[r.kind].retriever or "text"
            out.append(Retriever(r.label, r.kind, r.backend.name, r.weight, backend, query_by))
        return out

    def vector_indexes(self) -> list[EmbeddingRetriever]:
        return self.chain("embedding_retriever")

    def vector_index(self) -> EmbeddingRetriever | None:
        """The first vector store: the one the update passes search for neighbours."""
        indexes = self.vector_indexes()
        return indexes[0] if indexes else None

    def text_indexes(self) -> list[ContextRetriever]:
        return self.chain("context_retriever")

    def graphs(self) -> list[GraphMemory]:
        return self.chain("graph_memory")

    def name_of(self, backend: Any) -> str:
        """The registered name of a built backend (for operation records)."""
        with self._lock:
            built = list(self._built.items())
        for path, candidate in built:
            if candidate is backend:
                return self._by_path(path).name
        return type(backend).__name__

    # -- building --------------------------------------------------------------------------

    def _by_path(self, path: str) -> ResolvedBackend:
        return next(b for found in self._selected.values() for b in found if b.path == path)

    def _build(self, selected: ResolvedBackend) -> Any:
        """The backend ``selected`` names, built once: a second thread asking meanwhile waits
        for the first one's build instead of building (and dropping, unclosed) another."""
        path = selected.path
        built = self._built.get(path)  # built already: no lock needed to read it
        if built is not None:
            return built
        with self._lock:
            if path in self._built:
                return self._built[path]
            building = self._building.setdefault(path, threading.Lock())
        with building:
            with self._lock:
                if path in self._built:
                    return self._built[path]
            backend = self._new(selected)
            with self._lock:
                self._built[path] = backend
            return backend

    def _new(self, selected: ResolvedBackend) -> Any:
        path, kind, registration = selected.path, selected.kind, selected.registration
        try:
            backend = registration.factory(selected.options, self._context(path))
        except LightMemError:
            raise
        except Exception as exc:
            raise BackendError(
                f"{path}: building {kind} backend {registration.name!r} (plugin "
                f"{registration.plugin}) failed: {type(exc).__name__}: {exc}"
            ) from exc
        check_protocol(backend, kind, path, registration, self.hooks.host)
        if kind == "text_embedder":
            backend = AccountedEmbedder(backend, registration.name, self.hooks)
        elif kind == "memory_manager":
            backend = AccountedLLM(backend, registration.name, self.hooks)
        return backend

    def close(self) -> None:
        """Close every built backend (the LLM client and the embedder too)."""
        with self._lock:
            built = list(self._built.values())
            self._built.clear()
        for backend in built:  # each kind's Protocol has close, or Closeable offers it
            if isinstance(backend, Closeable):
                try:
                    backend.close()
                except Exception as exc:
                    log.warning("closing %r failed: %s", backend, exc)
