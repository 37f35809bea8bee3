"""The hook plugins one memory runs: selected and ordered by its configuration, each with a context.

Registration hooks run for every installed plugin (they only record named backends). The
runtime hooks — observers, mutators and the ``lightmem_run_operation`` wrapper — run only for
the plugins the configuration names under ``hooks``, in that order, each receiving a
:class:`~lightmem_hookspecs.HookContext` with the memory directory, the call's scope and its own
options. ``hooks: "all"`` opts into every installed hook plugin, in load order.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import attrs
import pluggy
from lightmem_hookspecs import (
    PROJECT_NAME,
    EntryChange,
    HookContext,
    MemoryEntry,
    Message,
    Operation,
    QueryContext,
    Scope,
    SearchHit,
    Segment,
)

from .errors import ConfigError, LightMemError
from .plugins import RUNTIME_HOOKS, PluginHost

if TYPE_CHECKING:
    from .config import HookPluginSpec

#: The operation running now in this thread/task (the parent of any operation started inside).
_current_operation: contextvars.ContextVar[Operation | None] = contextvars.ContextVar(
    "lightmem_current_operation", default=None
)
#: The scope of the public call running now (``None``: work over every scope).
_current_scope: contextvars.ContextVar[Scope | None] = contextvars.ContextVar(
    "lightmem_current_scope", default=None
)


@attrs.frozen
class _Selected:
    plugin: str
    context_base: HookContext
    impls: Mapping[str, Any]  # hook name -> pluggy HookImpl


class HookChain:
    """Calls the runtime hooks of the selected plugins, in the configured order."""

    def __init__(
        self,
        host: PluginHost,
        selection: Sequence[HookPluginSpec] | str | None,
        *,
        memory_dir: str,
        core: Sequence[object] = (),
    ) -> None:
        self.host = host
        self.memory_dir = memory_dir
        #: The core's own implementations of its contract (e.g. usage booking), run
        #: outermost, before every selected plugin; not listed in :attr:`plugins`.
        self._core = [_own(plugin, memory_dir) for plugin in core]
        self._selected = self._select(host, selection, memory_dir)

    @staticmethod
    def _select(
        host: PluginHost, selection: Sequence[HookPluginSpec] | str | None, memory_dir: str
    ) -> list[_Selected]:
        from .config import HookPluginSpec

        available = host.hook_plugins()
        if selection is None:
            return []
        specs: list[tuple[str, HookPluginSpec]]
        if selection == "all":
            specs = [(f"$.hooks ({name})", HookPluginSpec(name)) for name in available]
        elif isinstance(selection, str):
            raise ConfigError([f'$.hooks: expected "all" or a list, got {selection!r}'])
        else:
            specs = [(f"$.hooks[{i}]", spec) for i, spec in enumerate(selection)]
        problems: list[str] = []
        chosen: list[_Selected] = []
        seen: set[str] = set()
        for path, spec in specs:
            if spec.plugin not in available:
                installed = ", ".join(available) if available else "none"
                problems.append(
                    f"{path}.plugin: no loaded plugin named {spec.plugin!r} implements a "
                    f"LightMem runtime hook. Hook plugins loaded: {installed}"
                )
                continue
            if spec.plugin in seen:
                problems.append(f"{path}.plugin: {spec.plugin!r} is named twice")
                continue
            seen.add(spec.plugin)
            impls = {}
            for hook_name in RUNTIME_HOOKS:
                found = host.hook_impls(spec.plugin, hook_name)
                if not found:
                    continue
                impl = found[0]
                if impl.hookwrapper:
                    problems.append(
                        f"{path}.plugin: {spec.plugin!r} implements {hook_name} as an old-style "
                        f"hookwrapper; use @hookimpl(wrapper=True)"
                    )
                impls[hook_name] = impl
            context = HookContext(
                memory_dir=memory_dir, plugin=spec.plugin, options=dict(spec.options or {})
            )
            chosen.append(_Selected(spec.plugin, context, impls))
        if problems:
            raise ConfigError(problems)
        return chosen

    @property
    def plugins(self) -> list[str]:
        """The selected hook plugins, in the order they run."""
        return [s.plugin for s in self._selected]

    # -- scope -----------------------------------------------------------------------------

    @staticmethod
    @contextmanager
    def scope(scope: Scope | None) -> Iterator[None]:
        """Hooks called inside this block see ``scope`` in their context."""
        token = _current_scope.set(scope)
        try:
            yield
        finally:
            _current_scope.reset(token)

    # -- observer and mutator hooks --------------------------------------------------------

    def _call(self, hook_name: str, **kwargs: Any) -> None:
        scope = _current_scope.get()
        for selected in self._selected:
            impl = selected.impls.get(hook_name)
            if impl is None:
                continue
            context = attrs.evolve(selected.context_base, scope=scope)
            impl.function(**_arguments(impl, kwargs, context))

    def messages_normalized(self, messages: list[Message]) -> None:
        self._call("lightmem_messages_normalized", messages=messages)

    def segments_ready(self, segments: list[Segment]) -> None:
        self._call("lightmem_segments_ready", segments=segments)

    def batch_extracted(self, segments: Sequence[Segment], entries: list[MemoryEntry]) -> None:
        self._call("lightmem_batch_extracted", segments=segments, entries=entries)

    def entries_stored(self, entries: Sequence[MemoryEntry]) -> None:
        self._call("lightmem_entries_stored", entries=entries)

    def entries_changed(self, changes: Sequence[EntryChange]) -> None:
        if changes:
            self._call("lightmem_entries_changed", changes=changes)

    def query_prepared(self, query: QueryContext) -> None:
        self._call("lightmem_query_prepared", query=query)

    def results_ready(self, query: QueryContext, hits: list[SearchHit]) -> None:
        self._call("lightmem_results_ready", query=query, hits=hits)

    # -- the wrapper hook ------------------------------------------------------------------

    def run_operation(
        self,
        name: str,
        call: Callable[[Operation], Any],
        *,
        backend: str | None = None,
        **details: Any,
    ) -> tuple[Any, Operation]:
        """Run ``call(operation)`` as an operation seen by the selected wrappers.

        The operation's usage is added to the enclosing operation's when it ends, so an outer
        operation totals the work done inside it.
        """
        parent = _current_operation.get()
        operation = Operation(
            name=name, call=lambda: None, backend=backend, details=details, parent=parent
        )
        operation.call = lambda: call(operation)
        scope = _current_scope.get()
        chain = [
            (impl, attrs.evolve(s.context_base, scope=scope))
            for s in (*self._core, *self._selected)
            if (impl := s.impls.get("lightmem_run_operation")) is not None
        ]
        token = _current_operation.set(operation)
        try:
            result = _run(chain, operation)
        finally:
            _current_operation.reset(token)
            if parent is not None:
                parent.usage.add(operation.usage)
        return result, operation


def _own(plugin: object, memory_dir: str) -> _Selected:
    """A core object's hook implementations (methods marked with ``hookimpl``)."""
    name = f"lightmem-core:{type(plugin).__name__}"
    impls = {}
    for hook_name in RUNTIME_HOOKS:
        method = getattr(plugin, hook_name, None)
        options = getattr(method, f"{PROJECT_NAME}_impl", None)
        if method is not None and options is not None:
            impls[hook_name] = pluggy.HookImpl(plugin, name, method, options)
    return _Selected(name, HookContext(memory_dir=memory_dir, plugin=name), impls)


def current_operation() -> Operation | None:
    """The operation running now, or ``None``."""
    return _current_operation.get()


def _arguments(impl: Any, kwargs: Mapping[str, Any], context: HookContext) -> dict[str, Any]:
    wanted = (*impl.argnames, *impl.kwargnames)
    values = {**kwargs, "context": context}
    return {k: values[k] for k in wanted if k in values}


def _run(chain: Sequence[tuple[Any, HookContext]], operation: Operation) -> Any:
    """Nest the wrappers of ``chain`` (first outermost) around the call; a non-wrapper
    implementation returning non-None replaces the call (``firstresult``)."""
    wrappers = [(impl, ctx) for impl, ctx in chain if impl.wrapper]
    runners = [(impl, ctx) for impl, ctx in chain if not impl.wrapper]

    def innermost() -> Any:
        for impl, ctx in runners:
            result = impl.function(**_arguments(impl, {"operation": operation}, ctx))
            if result is not None:
                return result
        return operation.call()

    def level(i: int) -> Any:
        if i == len(wrappers):
            return innermost()
        impl, ctx = wrappers[i]
        gen = impl.function(**_arguments(impl, {"operation": operation}, ctx))
        try:
            next(gen)
        except StopIteration:
            raise LightMemError(
                f"hook plugin {impl.plugin_name!r}: its lightmem_run_operation wrapper did not "
                f"yield"
            ) from None
        try:
            result = level(i + 1)
        except BaseException as exc:
            try:
                gen.throw(exc)
            except StopIteration as stop:
                return stop.value
            raise LightMemError(
                f"hook plugin {impl.plugin_name!r}: its lightmem_run_operation wrapper yielded "
                f"twice"
            ) from exc
        try:
            gen.send(result)
        except StopIteration as stop:
            return stop.value
        raise LightMemError(
            f"hook plugin {impl.plugin_name!r}: its lightmem_run_operation wrapper yielded twice"
        )

    return level(0)
