"""The hook plugins one memory runs: selected and ordered by its configuration, each with a context.

Registration hooks run for every installed plugin (they only record named backends). The
runtime hooks — observers, mutators and the ``lightmem_run_operation`` wrapper — run only for
the plugins the configuration names under ``hooks``, in that order, each receiving a
:class:`~lightmem_hookspecs.HookContext` with the memory directory, the call's scope and its own
options. ``hooks: "all"`` opts into every installed hook plugin, in load order.

Pluggy calls them: each memory has a plugin manager of its own holding the selected plugins
(and the core's own implementations, outermost), registered so that pluggy's call order is the
configured order; each plugin's implementations are registered through a thin adapter that
hands them their own :class:`~lightmem_hookspecs.HookContext`.
"""

from __future__ import annotations

import contextvars
import inspect
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import attrs
import pluggy
from lightmem_hookspecs import (
    HOOK_OPTIONS_ATTRIBUTE,
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
    hookimpl,
    specs,
)

from .errors import ConfigError
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
        self._selected = self._select(host, selection, memory_dir)
        #: This memory's plugin manager: pluggy calls the hooks. Implementations run
        #: last-registered-first, and a wrapper registered later is outside one registered
        #: earlier: so the core's runner goes in first (innermost), then the selected plugins
        #: from the last configured to the first, then the core's own implementations of its
        #: contract (e.g. usage booking), outermost and not listed in :attr:`plugins`.
        self.pm = pluggy.PluginManager(PROJECT_NAME)
        self.pm.add_hookspecs(specs)
        self.pm.register(_CoreRunner(), name="lightmem-core:runner")
        for selected in reversed(self._selected):
            self.pm.register(_Adapter(selected), name=selected.plugin)
        for i, plugin in enumerate(core):
            self.pm.register(plugin, name=f"lightmem-core:{type(plugin).__name__}:{i}")
        #: The runtime hooks some registered plugin implements; the others are not called.
        self._implemented = frozenset(
            n for n in RUNTIME_HOOKS if getattr(self.pm.hook, n).get_hookimpls()
        )
        #: The core's own operation wrappers, outermost first, when they are all there is
        #: (no selected plugin implements ``lightmem_run_operation``): the core then runs them
        #: itself, as pluggy would, without a hook call per operation. ``None``: pluggy calls.
        self._core_wrappers = _core_wrappers(self.pm)

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
            try:
                options = _hook_options(host, spec, path)
            except ConfigError as exc:
                problems += exc.errors
                continue
            context = HookContext(memory_dir=memory_dir, plugin=spec.plugin, options=options)
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
        if hook_name not in self._implemented:
            return
        context = HookContext(memory_dir=self.memory_dir, scope=_current_scope.get())
        getattr(self.pm.hook, hook_name)(**kwargs, context=context)

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
        token = _current_operation.set(operation)
        try:
            if self._core_wrappers is not None:
                result = _wrapped(self._core_wrappers, operation, self.memory_dir)
            else:
                context = HookContext(memory_dir=self.memory_dir, scope=_current_scope.get())
                result = self.pm.hook.lightmem_run_operation(operation=operation, context=context)
        finally:
            _current_operation.reset(token)
            if parent is not None:
                parent.usage.add(operation.usage)
        return result, operation


def _core_wrappers(pm: pluggy.PluginManager) -> tuple[Any, ...] | None:
    """The new-style wrappers of ``lightmem_run_operation``, outermost first, when the only
    other implementation is the core's runner and no selected plugin implements it."""
    impls = pm.hook.lightmem_run_operation.get_hookimpls()
    for impl in impls:
        if isinstance(impl.plugin, _Adapter):
            return None
        if not impl.wrapper and not isinstance(impl.plugin, _CoreRunner):
            return None
    return tuple(impl for impl in reversed(impls) if impl.wrapper)  # pluggy's call order


def _wrapped(wrappers: Sequence[Any], operation: Operation, memory_dir: str) -> Any:
    """Run ``operation`` inside ``wrappers`` (new-style generator wrappers, outermost first)
    as pluggy runs them: each runs to its ``yield``, the innermost runs the work, and each
    receives the result (or the exception) at its ``yield`` and returns what the call returns."""
    if not wrappers:
        return operation.call()
    impl, inner = wrappers[0], wrappers[1:]
    values: dict[str, Any] = {"operation": operation}
    if "context" in impl.argnames:
        values["context"] = HookContext(memory_dir=memory_dir, scope=_current_scope.get())
    step = impl.function(**{k: values[k] for k in impl.argnames})
    next(step)
    try:
        result = _wrapped(inner, operation, memory_dir)
    except BaseException as exc:
        try:
            step.throw(exc)
        except StopIteration as stop:
            return stop.value
        raise RuntimeError(f"wrapper {impl.plugin_name} did not stop after its yield") from exc
    try:
        step.send(result)
    except StopIteration as stop:
        return stop.value
    raise RuntimeError(f"wrapper {impl.plugin_name} did not stop after its yield")


def current_operation() -> Operation | None:
    """The operation running now, or ``None``."""
    return _current_operation.get()


def _arguments(impl: Any, kwargs: Mapping[str, Any], context: HookContext) -> dict[str, Any]:
    wanted = (*impl.argnames, *impl.kwargnames)
    values = {**kwargs, "context": context}
    return {k: values[k] for k in wanted if k in values}


def _hook_options(host: PluginHost, spec: HookPluginSpec, path: str) -> dict[str, Any]:
    """The plugin's options from the configuration, validated by its declared options class
    (``LIGHTMEM_HOOK_OPTIONS``, an attrs class) with ``$.hooks[i].options...`` errors and
    returned with its defaults filled in; as given when it declares none."""
    from .config import structure

    given = dict(spec.options or {})
    declared = getattr(host.pm.get_plugin(spec.plugin), HOOK_OPTIONS_ATTRIBUTE, None)
    if declared is None:
        return given
    if not attrs.has(declared):
        raise ConfigError(
            [f"{path}: plugin {spec.plugin!r}'s {HOOK_OPTIONS_ATTRIBUTE} is not an attrs class"]
        )
    return attrs.asdict(structure(given, declared, path=f"{path}.options"), recurse=False)


class _CoreRunner:
    """Innermost: runs the operation's work when no implementation returned a result."""

    @hookimpl(trylast=True)
    def lightmem_run_operation(self, operation: Operation) -> Any:
        return operation.call()


class _Adapter:
    """A selected plugin's runtime hook implementations, as pluggy registers them: each
    attribute is named after a hook, declares the hook's own parameters (pluggy reads them
    through ``__wrapped__``) and calls the plugin's implementation with the plugin's context
    (its options, the call's scope) and only the arguments it declares."""

    def __init__(self, selected: _Selected) -> None:
        for hook_name, impl in selected.impls.items():
            setattr(self, hook_name, _adapt(hook_name, impl, selected.context_base))


def _adapt(hook_name: str, impl: Any, base: HookContext) -> Callable[..., Any]:
    spec = getattr(specs, hook_name)
    names = tuple(inspect.signature(spec).parameters)

    def arguments(args: tuple[Any, ...]) -> dict[str, Any]:
        values = dict(zip(names, args, strict=True))
        return _arguments(impl, values, attrs.evolve(base, scope=values["context"].scope))

    def call(*args: Any) -> Any:
        return impl.function(**arguments(args))

    def wrap(*args: Any) -> Generator[Any, Any, Any]:
        # pluggy drives a wrapper by its generator: delegate to the plugin's
        return (yield from impl.function(**arguments(args)))

    adapter: Any = wrap if impl.wrapper else call
    adapter.__wrapped__ = spec
    adapter.__name__ = hook_name
    return hookimpl(wrapper=impl.wrapper)(adapter)
