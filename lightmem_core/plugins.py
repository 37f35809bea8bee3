"""Plugin discovery, the backend registry and the one typed facade over LightMem's hooks."""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from collections.abc import Callable, Iterable, Sequence
from importlib import metadata
from typing import Any

import attrs
import pluggy
from lightmem_hookspecs import (
    BACKEND_KINDS,
    ENTRY_POINT_GROUP,
    PROJECT_NAME,
    BackendRegistration,
    EntryChange,
    MemoryEntry,
    Message,
    Operation,
    QueryContext,
    SearchHit,
    Segment,
    hookimpl,
    specs,
)

from .errors import DuplicateBackendError

ENV_DISABLE_AUTOLOAD = "LIGHTMEM_DISABLE_PLUGIN_AUTOLOAD"
ENV_ONLY_PLUGINS = "LIGHTMEM_PLUGINS"

#: Hook name suffix per backend kind (``lightmem_register_<suffix>``).
REGISTRATION_HOOKS: dict[str, str] = {
    "pre_compressor": "lightmem_register_pre_compressors",
    "topic_segmenter": "lightmem_register_topic_segmenters",
    "memory_manager": "lightmem_register_memory_managers",
    "text_embedder": "lightmem_register_text_embedders",
    "multimodal_embedder": "lightmem_register_multimodal_embedders",
    "embedding_retriever": "lightmem_register_embedding_retrievers",
    "context_retriever": "lightmem_register_context_retrievers",
    "graph_memory": "lightmem_register_graph_memories",
    "reranker": "lightmem_register_rerankers",
}
assert set(REGISTRATION_HOOKS) == set(BACKEND_KINDS)

#: The plugin that provides each backend shipped by the LightMem project, for install hints.
KNOWN_PROVIDERS: dict[tuple[str, str], str] = {
    ("pre_compressor", "llmlingua-2"): "lightmem-llmlingua",
    ("topic_segmenter", "llmlingua-2"): "lightmem-llmlingua",
    ("pre_compressor", "entropy-compress"): "lightmem-entropy",
    ("topic_segmenter", "embedding"): "lightmem-core",
    ("memory_manager", "openai"): "lightmem-openai",
    ("memory_manager", "deepseek"): "lightmem-openai",
    ("memory_manager", "llama-cpp"): "lightmem-llamacpp",
    ("text_embedder", "huggingface"): "lightmem-huggingface",
    ("embedding_retriever", "qdrant"): "lightmem-qdrant",
    ("context_retriever", "bm25"): "lightmem-bm25",
}


def normalize_name(name: str) -> str:
    """Backend names compare case-insensitively, with ``_`` and ``-`` equivalent."""
    return name.strip().lower().replace("_", "-")


@attrs.define
class PluginInfo:
    """What discovery learnt about one plugin."""

    name: str
    distribution: str | None = None
    version: str | None = None
    module: str | None = None
    error: str | None = None
    backends: dict[str, list[str]] = attrs.field(factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


class BackendRegistry:
    """Named backends by kind, as registered by plugins."""

    def __init__(self) -> None:
        self._by_kind: dict[str, dict[str, BackendRegistration]] = {k: {} for k in BACKEND_KINDS}
        self.conflicts: list[str] = []

    def add(self, registration: BackendRegistration, *, distribution: str | None) -> None:
        key = normalize_name(registration.name)
        existing = self._by_kind[registration.kind].get(key)
        if existing is not None:
            self.conflicts.append(
                f"{registration.kind} backend {registration.name!r} is registered by two plugins: "
                f"{existing.plugin!r} and {registration.plugin!r} "
                f"(distribution {distribution or 'unknown'}). Uninstall one of them, or choose "
                f"which plugins load with {ENV_ONLY_PLUGINS}=name,name."
            )
            return
        self._by_kind[registration.kind][key] = registration

    def get(self, kind: str, name: str) -> BackendRegistration | None:
        return self._by_kind[kind].get(normalize_name(name))

    def names(self, kind: str) -> list[str]:
        return sorted(r.name for r in self._by_kind[kind].values())

    def all(self) -> list[BackendRegistration]:
        return [r for kind in BACKEND_KINDS for r in self._by_kind[kind].values()]

    def check(self) -> None:
        if self.conflicts:
            raise DuplicateBackendError("\n".join(self.conflicts))


class _CoreOperations:
    """The core's own implementation of ``lightmem_run_operation``: it runs the call."""

    @hookimpl(trylast=True)
    def lightmem_run_operation(self, operation: Operation) -> Any:
        result = operation.call()
        # firstresult hooks treat None as "no answer"; wrap so wrappers always see a result.
        return _Result(result)


@attrs.frozen
class _Result:
    value: Any


class PluginHost:
    """Owns the pluggy manager: loads plugins, builds the registry, calls hooks.

    The rest of the core calls hooks only through the typed methods of this class.
    """

    def __init__(self, *, autoload: bool | None = None, only: Sequence[str] | None = None) -> None:
        self.pm = pluggy.PluginManager(PROJECT_NAME)
        self.pm.add_hookspecs(specs)
        self.pm.register(_CoreOperations(), name="lightmem-core-operations")
        self.plugins: dict[str, PluginInfo] = {}
        self._registry: BackendRegistry | None = None
        if autoload is None:
            autoload = os.environ.get(ENV_DISABLE_AUTOLOAD, "").strip().lower() not in (
                "1",
                "true",
                "yes",
                "on",
            )
        if only is None and os.environ.get(ENV_ONLY_PLUGINS):
            only = [n.strip() for n in os.environ[ENV_ONLY_PLUGINS].split(",") if n.strip()]
        self.only = None if only is None else {normalize_name(n) for n in only}
        if autoload:
            self.load_entry_points()

    # -- loading ---------------------------------------------------------------------------

    def load_entry_points(self) -> None:
        """Load every ``lightmem.plugins`` entry point; a failing one is recorded, not raised."""
        for ep in _entry_points():
            if self.only is not None and normalize_name(ep.name) not in self.only:
                continue
            dist = getattr(ep, "dist", None)
            info = PluginInfo(
                name=ep.name,
                distribution=dist.metadata["Name"] if dist is not None else None,
                version=dist.version if dist is not None else None,
                module=ep.value,
            )
            if ep.name in self.plugins:
                info.error = (
                    f"another plugin named {ep.name!r} is already loaded "
                    f"(from {self.plugins[ep.name].distribution}); this one was skipped"
                )
                self.plugins[f"{ep.name} ({info.distribution})"] = info
                continue
            self.plugins[ep.name] = info
            try:
                plugin = ep.load()
            except Exception as exc:
                info.error = _describe(exc)
                continue
            self._register_checked(plugin, info)

    def register(
        self,
        plugin: object,
        name: str | None = None,
        *,
        distribution: str | None = None,
        version: str | None = None,
    ) -> PluginInfo:
        """Register a plugin object or module by hand (tests, applications)."""
        name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
        info = PluginInfo(
            name=name,
            distribution=distribution,
            version=version,
            module=getattr(plugin, "__name__", type(plugin).__qualname__),
        )
        self.plugins[name] = info
        self._register_checked(plugin, info)
        return info

    def unregister(self, name: str) -> None:
        self.pm.unregister(name=name)
        self.plugins.pop(name, None)
        self._registry = None

    def _register_checked(self, plugin: object, info: PluginInfo) -> None:
        misspelt = _unknown_hook_names(plugin, self.pm)
        if misspelt:
            info.error = (
                f"defines {', '.join(misspelt)}, which is not a LightMem hook "
                f"(misspelt?). Known hooks: {', '.join(sorted(_spec_names()))}"
            )
            return
        try:
            self.pm.register(plugin, name=info.name)
            self.pm.check_pending()
        except Exception as exc:
            info.error = _describe(exc)
            if self.pm.is_registered(plugin):
                self.pm.unregister(plugin)
            return
        self._registry = None

    # -- registry --------------------------------------------------------------------------

    @property
    def registry(self) -> BackendRegistry:
        if self._registry is None:
            self._registry = self._build_registry()
        return self._registry

    def _build_registry(self) -> BackendRegistry:
        registry = BackendRegistry()
        for info in self.plugins.values():
            info.backends = {}
        for kind, hook_name in REGISTRATION_HOOKS.items():
            hook = getattr(self.pm.hook, hook_name)
            # Oldest plugin first, so a duplicate is reported against the one loaded earlier.
            for impl in reversed(hook.get_hookimpls()):
                found = self.plugins.get(impl.plugin_name)
                if found is None or found.error:
                    continue
                info = found
                register = _make_register(kind, impl.plugin_name, info, registry)
                try:
                    impl.function(register=register)
                except Exception as exc:
                    info.error = f"{hook_name} failed: {_describe(exc)}"
        return registry

    def failed_plugins(self) -> list[PluginInfo]:
        return [p for p in self.plugins.values() if p.error]

    # -- broadcast hooks -------------------------------------------------------------------

    def messages_normalized(self, messages: list[Message]) -> None:
        self.pm.hook.lightmem_messages_normalized(messages=messages)

    def segments_ready(self, segments: list[Segment]) -> None:
        self.pm.hook.lightmem_segments_ready(segments=segments)

    def batch_extracted(self, segments: Sequence[Segment], entries: list[MemoryEntry]) -> None:
        self.pm.hook.lightmem_batch_extracted(segments=segments, entries=entries)

    def entries_stored(self, entries: Sequence[MemoryEntry]) -> None:
        self.pm.hook.lightmem_entries_stored(entries=entries)

    def entries_changed(self, changes: Sequence[EntryChange]) -> None:
        self.pm.hook.lightmem_entries_changed(changes=changes)

    def query_prepared(self, query: QueryContext) -> None:
        self.pm.hook.lightmem_query_prepared(query=query)

    def results_ready(self, query: QueryContext, hits: list[SearchHit]) -> None:
        self.pm.hook.lightmem_results_ready(query=query, hits=hits)

    # -- wrapper hook ----------------------------------------------------------------------

    def run_operation(
        self,
        name: str,
        call: Callable[[Operation], Any],
        *,
        backend: str | None = None,
        **details: Any,
    ) -> tuple[Any, Operation]:
        """Run ``call(operation)`` as an operation seen by ``lightmem_run_operation`` wrappers."""
        operation = Operation(name=name, call=lambda: None, backend=backend, details=details)
        operation.call = lambda: call(operation)
        result = self.pm.hook.lightmem_run_operation(operation=operation)
        if isinstance(result, _Result):
            return result.value, operation
        return result, operation


def _make_register(
    kind: str, plugin_name: str, info: PluginInfo, registry: BackendRegistry
) -> Callable[..., None]:
    def register(
        name: str,
        factory: Callable[..., Any],
        options: type | None = None,
        description: str = "",
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"backend name must be a non-empty string, got {name!r}")
        if not callable(factory):
            raise TypeError(f"factory of {kind} backend {name!r} is not callable")
        if options is not None and not attrs.has(options):
            raise TypeError(f"options of {kind} backend {name!r} must be an attrs class")
        registration = BackendRegistration(
            kind=kind,
            name=name,
            factory=factory,
            options=options,
            description=description,
            plugin=plugin_name,
        )
        registry.add(registration, distribution=info.distribution)
        info.backends.setdefault(kind, []).append(name)

    return register


def _entry_points() -> Iterable[metadata.EntryPoint]:
    return metadata.entry_points(group=ENTRY_POINT_GROUP)


def _spec_names() -> set[str]:
    return {n for n in dir(specs) if n.startswith(f"{PROJECT_NAME}_")}


def _unknown_hook_names(plugin: object, pm: pluggy.PluginManager) -> list[str]:
    known = _spec_names()
    names = []
    for attr in dir(plugin):
        is_hook_name = attr.startswith(f"{PROJECT_NAME}_") and attr not in known
        if is_hook_name and callable(getattr(plugin, attr, None)):
            names.append(attr)
    return names


def _describe(exc: BaseException) -> str:
    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    where = f" ({frame.filename}:{frame.lineno})" if frame else ""
    return f"{type(exc).__name__}: {exc}{where}"


def import_string(path: str) -> Any:
    module, _, attr = path.partition(":")
    obj = importlib.import_module(module)
    return getattr(obj, attr) if attr else obj


def heavy_modules_loaded() -> list[str]:
    """Heavy libraries that discovery and config validation must never import."""
    heavy = (
        "torch",
        "transformers",
        "llmlingua",
        "sentence_transformers",
        "qdrant_client",
        "openai",
        "networkx",
        "llama_cpp",
        "numpy",
    )
    return [m for m in heavy if m in sys.modules]
