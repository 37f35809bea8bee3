"""Plugin discovery, the backend registry and the one typed facade over LightMem's hooks."""

from __future__ import annotations

import os
import re
import sys
import traceback
import warnings
from collections.abc import Callable, Iterable, Sequence
from importlib import metadata
from typing import Any

import attrs
import pluggy
from lightmem_hookspecs import (
    BACKEND_KINDS,
    CONTRACT_ATTRIBUTE,
    CONTRACT_DISTRIBUTION,
    CONTRACT_VERSION,
    ENTRY_POINT_GROUP,
    KINDS,
    KINDS_BY_NAME,
    PROJECT_NAME,
    BackendContext,
    BackendRegistrar,
    BackendRegistration,
    Register,
    changes_between,
    compatible,
    parse_version,
    specs,
)

from .errors import DuplicateBackendError, PluginContractError

ENV_DISABLE_AUTOLOAD = "LIGHTMEM_DISABLE_PLUGIN_AUTOLOAD"
ENV_ONLY_PLUGINS = "LIGHTMEM_PLUGINS"

#: The registration hook: a plugin registers backends of every kind through the registrar.
BACKENDS_HOOK = f"{PROJECT_NAME}_register_backends"

#: The per-kind registration hooks (deprecated since contract 1.7, still called), by kind, from
#: the contract's table of kinds (a kind added later has none: the registrar alone).
REGISTRATION_HOOKS: dict[str, str] = {k.name: k.hook for k in KINDS if k.hook}

#: The contract version that deprecated the per-kind registration hooks.
PER_KIND_HOOKS_DEPRECATED_IN = "1.7"

#: (plugin, hook, file, line) of the deprecated hook implementations already warned about: a
#: process warns once for each, however many hosts it builds.
_WARNED: set[tuple[str, str, str, int]] = set()

#: Hooks that are not registration hooks: observers, mutators and the wrapper hook. Only the
#: plugins a memory's configuration selects run them for that memory.
RUNTIME_HOOKS: tuple[str, ...] = tuple(
    sorted(
        n
        for n in dir(specs)
        if n.startswith(f"{PROJECT_NAME}_")
        and n not in {BACKENDS_HOOK, *REGISTRATION_HOOKS.values()}
    )
)

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
    ("multimodal_embedder", "huggingface"): "lightmem-huggingface",
    ("embedding_retriever", "qdrant"): "lightmem-qdrant",
    ("context_retriever", "bm25"): "lightmem-bm25",
    ("context_retriever", "sqlite-bm25"): "lightmem-sqlite-index",
    ("context_retriever", "sqlite-fts"): "lightmem-sqlite-index",
    ("graph_memory", "networkx"): "lightmem-networkx",
    ("graph_memory", "falkordb"): "lightmem-falkordb",
    ("embedding_retriever", "pgvector"): "lightmem-postgres",
    ("context_retriever", "postgres-fts"): "lightmem-postgres",
    ("record_store", "postgres"): "lightmem-postgres",
}

#: Distributions of this repository a plugin needs installed with it (they are not on PyPI):
#: libraries under ``libs/`` and other plugins. ``tests/test_install_hints.py`` checks this
#: against each plugin's pyproject.
PROVIDER_LIBS: dict[str, tuple[str, ...]] = {
    name: ("lightmem-textkit",)
    for name in (
        "lightmem-bm25",
        "lightmem-entropy",
        "lightmem-huggingface",
        "lightmem-llmlingua",
        "lightmem-postgres",
        "lightmem-sqlite-index",
    )
}

#: Distributions of ``libs/``; every other one is a folder of ``plugins/``.
REPOSITORY_LIBS = frozenset({"lightmem-textkit"})


def install_command(provider: str) -> str:
    """The pip command that installs ``provider`` from a LightMem checkout."""
    folders = [
        f"./{'libs' if dist in REPOSITORY_LIBS else 'plugins'}/{dist}"
        for dist in (*PROVIDER_LIBS.get(provider, ()), provider)
    ]
    return f"pip install -c constraints.txt {' '.join(folders)}"


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
    #: The contract version the plugin was built for (``None``: it does not say).
    contract: str | None = None
    #: The distribution's summary (or the plugin module's first docstring line).
    description: str = ""
    #: The runtime hooks it implements (a hook plugin: select it under ``hooks``).
    hooks: list[str] = attrs.field(factory=list)
    #: What it uses that the contract deprecated, and what replaces it (one line each).
    deprecated: list[str] = attrs.field(factory=list)

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


class BackendRegistry:
    """Named backends by kind, as registered by plugins.

    Two plugins registering one name for one kind is a conflict; it is an error only for a
    configuration that selects that name (:meth:`get` raises, naming both providers).
    """

    def __init__(self) -> None:
        self._by_kind: dict[str, dict[str, BackendRegistration]] = {k: {} for k in BACKEND_KINDS}
        self._providers: dict[tuple[str, str], list[str]] = {}
        self._conflicts: dict[tuple[str, str], str] = {}

    def add(self, registration: BackendRegistration, *, distribution: str | None) -> None:
        key = normalize_name(registration.name)
        provider = f"{registration.plugin!r} (distribution {distribution or 'unknown'})"
        providers = self._providers.setdefault((registration.kind, key), [])
        providers.append(provider)
        if key in self._by_kind[registration.kind]:
            self._conflicts[(registration.kind, key)] = (
                f"{registration.kind} backend {registration.name!r} is registered by "
                f"{len(providers)} plugins: {' and '.join(providers)}. Uninstall all but one "
                f"of them, or choose which plugins load with {ENV_ONLY_PLUGINS}=name,name."
            )
            return
        self._by_kind[registration.kind][key] = registration

    def first(self, kind: str, name: str) -> BackendRegistration | None:
        """The first registration of ``name`` for ``kind`` (conflicts or not)."""
        return self._by_kind[kind].get(normalize_name(name))

    def get(self, kind: str, name: str) -> BackendRegistration | None:
        """The registration of ``name``; raises :class:`DuplicateBackendError` if two plugins
        provide it."""
        key = normalize_name(name)
        conflict = self._conflicts.get((kind, key))
        if conflict is not None:
            raise DuplicateBackendError(conflict)
        return self._by_kind[kind].get(key)

    def names(self, kind: str) -> list[str]:
        return sorted(r.name for r in self._by_kind[kind].values())

    def all(self) -> list[BackendRegistration]:
        return [r for kind in BACKEND_KINDS for r in self._by_kind[kind].values()]

    @property
    def conflicts(self) -> list[str]:
        """Every name two plugins register, described (listed by ``lightmem plugins``)."""
        return list(self._conflicts.values())


class PluginHost:
    """Owns the pluggy manager: loads plugins, builds the registry, calls hooks.

    The rest of the core calls hooks only through the typed methods of this class.
    """

    def __init__(self, *, autoload: bool | None = None, only: Sequence[str] | None = None) -> None:
        self.pm = pluggy.PluginManager(PROJECT_NAME)
        self.pm.add_hookspecs(specs)
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
        #: Installed plugins the selection (``only`` / LIGHTMEM_PLUGINS) left out, described.
        self.left_out: list[str] = []
        if autoload:
            self.load_entry_points()

    # -- loading ---------------------------------------------------------------------------

    def load_entry_points(self) -> None:
        """Load every ``lightmem.plugins`` entry point; a failing one is recorded, not raised."""
        seen: set[str] = set()
        for ep in _entry_points():
            seen.add(normalize_name(ep.name))
            dist = getattr(ep, "dist", None)
            meta = dist.metadata if dist is not None else None  # parsed once per plugin
            if self.only is not None and normalize_name(ep.name) not in self.only:
                self.left_out.append(f"{ep.name} ({meta['Name'] if meta else '?'})")
                continue
            info = PluginInfo(
                name=ep.name,
                distribution=meta["Name"] if meta is not None else None,
                version=meta["Version"] if meta is not None else None,
                module=ep.value,
                description=(meta.get("Summary") or "") if meta is not None else "",
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
            refused = check_contract(plugin, dist, info)
            if refused:
                info.error = refused
                continue
            self._register_checked(plugin, info)
        for name in sorted((self.only or set()) - seen):
            installed = ", ".join(sorted(seen)) or "none"
            self.plugins[name] = PluginInfo(
                name=name,
                error=f"{ENV_ONLY_PLUGINS} names {name!r}, but no installed plugin is called "
                f"that. Installed plugins: {installed}",
            )

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
        refused = check_contract(plugin, None, info)
        if refused:
            info.error = refused
            return info
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
        if not info.description:
            doc = (getattr(plugin, "__doc__", None) or "").strip()
            info.description = doc.splitlines()[0] if doc else ""
        self._warn_deprecated(info)
        info.hooks = [
            hook
            for hook in RUNTIME_HOOKS
            if any(i.plugin_name == info.name for i in getattr(self.pm.hook, hook).get_hookimpls())
        ]
        self._registry = None

    def _warn_deprecated(self, info: PluginInfo) -> None:
        """Record in ``info`` each per-kind registration hook its plugin implements, with the
        call that replaces it, and warn (``DeprecationWarning``, attributed to the plugin's own
        function) once per process for each."""
        info.deprecated = []
        for kind, hook_name in REGISTRATION_HOOKS.items():
            for impl in self.hook_impls(info.name, hook_name):
                message = (
                    f"plugin {info.name!r} implements {hook_name}, deprecated since contract "
                    f"{PER_KIND_HOOKS_DEPRECATED_IN}: implement {BACKENDS_HOOK}(registrar) and "
                    f"call registrar.{kind}(name, factory, options=..., description=...) "
                    "instead (lightmem-hookspecs' CHANGELOG, 1.7.0, shows how)"
                )
                info.deprecated.append(message)
                code = getattr(impl.function, "__code__", None)
                filename = code.co_filename if code else "<plugin>"
                lineno = code.co_firstlineno if code else 0
                key = (info.name, hook_name, filename, lineno)
                if key in _WARNED:
                    continue
                _WARNED.add(key)
                warnings.warn_explicit(
                    message,
                    DeprecationWarning,
                    filename=filename,
                    lineno=lineno,
                    module=getattr(impl.function, "__module__", None) or info.name,
                )

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
        # Oldest plugin first, so a duplicate is reported against the one loaded earlier.
        for impl in reversed(getattr(self.pm.hook, BACKENDS_HOOK).get_hookimpls()):
            found = self.plugins.get(impl.plugin_name)
            if found is None or found.error:
                continue
            registrar = PluginRegistrar(impl.plugin_name, found, registry)
            try:
                impl.function(registrar=registrar)
            except Exception as exc:
                found.error = f"{BACKENDS_HOOK} failed: {_describe(exc)}"
        for kind, hook_name in REGISTRATION_HOOKS.items():
            hook = getattr(self.pm.hook, hook_name)
            # Oldest plugin first, so a duplicate is reported against the one loaded earlier.
            for impl in reversed(hook.get_hookimpls()):
                found = self.plugins.get(impl.plugin_name)
                if found is None or found.error:
                    continue
                info = found
                register = _make_register(kind, PluginRegistrar(impl.plugin_name, info, registry))
                try:
                    impl.function(register=register)
                except Exception as exc:
                    info.error = f"{hook_name} failed: {_describe(exc)}"
        return registry

    def failed_plugins(self) -> list[PluginInfo]:
        return [p for p in self.plugins.values() if p.error]

    # -- runtime hooks ---------------------------------------------------------------------

    def hook_plugins(self) -> list[str]:
        """Names of the loaded plugins that implement a runtime (non-registration) hook, in
        load order."""
        names: set[str] = set()
        for hook_name in RUNTIME_HOOKS:
            names.update(i.plugin_name for i in getattr(self.pm.hook, hook_name).get_hookimpls())
        return [n for n in self.plugins if n in names]

    def hook_impls(self, plugin: str, hook_name: str) -> list[Any]:
        """The pluggy implementations of ``hook_name`` that ``plugin`` provides."""
        return [
            impl
            for impl in getattr(self.pm.hook, hook_name).get_hookimpls()
            if impl.plugin_name == plugin
        ]


def declared_contract(plugin: object, dist: Any) -> tuple[str | None, str | None]:
    """(the contract version ``plugin`` was built for, its requirement on the contract).

    The version is the plugin's ``LIGHTMEM_CONTRACT`` attribute if it has one, else the lowest
    version its distribution's requirement on ``lightmem-hookspecs`` admits, else ``None``.
    """
    requirement = _contract_requirement(dist)
    declared = getattr(plugin, CONTRACT_ATTRIBUTE, None)
    if declared is not None:
        return str(declared), requirement
    if requirement is None:
        return None, None
    lowest = [v for op, v in _specifiers(requirement) if op in (">=", "==", "~=", "===", ">")]
    return (min(lowest, key=parse_version) if lowest else None), requirement


def _contract_requirement(dist: Any) -> str | None:
    """The distribution's requirement on ``lightmem-hookspecs`` with a version specifier."""
    if dist is None:
        return None
    for line in dist.requires or ():
        name = line.split(";", 1)[0].strip()
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^]]*\])?\s*(.*)$", name)
        if match and normalize_name(match.group(1)).replace(".", "-") == CONTRACT_DISTRIBUTION:
            return name if match.group(2).strip() else None
    return None


_SPECIFIER = re.compile(r"(===|~=|==|!=|<=|>=|<|>)\s*([0-9][0-9A-Za-z.*+!-]*)")


def _specifiers(requirement: str) -> list[tuple[str, str]]:
    """``"lightmem-hookspecs>=1.0,<2"`` -> ``[(">=", "1.0"), ("<", "2")]`` (a small reading of
    PEP 440 specifiers: importing ``packaging`` would cost discovery 80 ms)."""
    spec = re.sub(r"^[A-Za-z0-9][A-Za-z0-9._-]*\s*(\[[^]]*\])?", "", requirement.strip())
    return _SPECIFIER.findall(spec.strip("() "))


def _satisfies(version: str, specifiers: list[tuple[str, str]]) -> bool:
    v = parse_version(version)
    for op, text in specifiers:
        if text.endswith(".*"):
            prefix = tuple(int(p) for p in text[:-2].split("."))
            same = v[: len(prefix)] == prefix
            if (op == "==" and not same) or (op == "!=" and same):
                return False
            continue
        w = parse_version(text)
        parts = len(text.split("."))
        ok = {
            ">=": v >= w,
            "<=": v <= w,
            ">": v > w,
            "<": v < w,
            "==": v == w,
            "===": v == w,
            "!=": v != w,
            # ~=1.4.2 means >=1.4.2,==1.4.*; ~=1.4 means >=1.4,==1.*
            "~=": v >= w and v[: max(parts - 1, 1)] == w[: max(parts - 1, 1)],
        }[op]
        if not ok:
            return False
    return True


def check_contract(plugin: object, dist: Any, info: PluginInfo) -> str | None:
    """Why ``plugin`` cannot run with this contract, or ``None`` when it can (or does not say
    which contract it was built for). Records the version it was built for in ``info``."""
    who = f"plugin {info.name!r}"
    if info.distribution:
        who += f" ({info.distribution} {info.version or ''})".replace(" )", ")")
    try:
        built_for, requirement = declared_contract(plugin, dist)
    except Exception as exc:
        return f"{who} declares its contract version unreadably: {exc}"
    info.contract = built_for
    upgrade = f"Install a version of {info.distribution or 'the plugin'} built for contract "
    upgrade += f"{parse_version(CONTRACT_VERSION)[0]}.x, or ask its author for one"
    if requirement is not None and not _satisfies(CONTRACT_VERSION, _specifiers(requirement)):
        return (
            f"{who} requires {requirement}, but this LightMem runs contract "
            f"{CONTRACT_VERSION} (lightmem-hookspecs {CONTRACT_VERSION}). {upgrade}."
            + _what_changed(built_for)
        )
    if built_for is None:
        return None
    try:
        ok = compatible(built_for)
    except ValueError as exc:
        return f"{who}: {CONTRACT_ATTRIBUTE} = {built_for!r}: {exc}"
    if ok:
        return None
    if parse_version(built_for) > parse_version(CONTRACT_VERSION):
        return (
            f"{who} was built for contract {built_for}, newer than this LightMem's "
            f"{CONTRACT_VERSION}: upgrade lightmem-core and lightmem-hookspecs."
        )
    return (
        f"{who} was built for contract {built_for}; this LightMem runs contract "
        f"{CONTRACT_VERSION}, which is incompatible. {upgrade}." + _what_changed(built_for)
    )


def _what_changed(built_for: str | None) -> str:
    if built_for is None:
        return ""
    try:
        changes = changes_between(built_for)
    except ValueError:
        return ""
    if not changes:
        return ""
    return " What changed since: " + "; ".join(changes) + " (see lightmem-hookspecs' CHANGELOG)."


def protocol_members(protocol: type) -> list[str]:
    """The attributes and methods a backend of ``protocol`` must have."""
    names: set[str] = set()
    for base in protocol.__mro__:
        if base.__name__ in ("Protocol", "Generic", "object"):
            continue
        names.update(getattr(base, "__annotations__", {}))
        names.update(n for n, v in vars(base).items() if callable(v) and not n.startswith("_"))
    return sorted(names)


def missing_members(backend: object, protocol: type) -> list[str]:
    """The members of ``protocol`` that ``backend`` lacks (empty: it implements it)."""
    return [name for name in protocol_members(protocol) if not hasattr(backend, name)]


class PluginRegistrar(BackendRegistrar):
    """The registrar one plugin's ``lightmem_register_backends`` receives: checks each
    registration and records it in the registry under the plugin's name."""

    def __init__(self, plugin_name: str, info: PluginInfo, registry: BackendRegistry) -> None:
        self.plugin_name = plugin_name
        self.info = info
        self.registry = registry

    def add(
        self,
        kind: str,
        name: str,
        factory: Callable[[Any, BackendContext], Any],
        *,
        options: type | None = None,
        description: str = "",
    ) -> None:
        where = f"plugin {self.plugin_name!r}"
        if kind not in KINDS_BY_NAME:
            raise PluginContractError(
                f"{where} registers {name!r} as a {kind!r} backend, which is not a backend kind "
                f"of contract {CONTRACT_VERSION}. Use one of the registrar's methods: "
                f"{', '.join(BACKEND_KINDS)}"
            )
        if not isinstance(name, str) or not name.strip():
            raise PluginContractError(
                f"{where}: the name of a {kind} backend must be a non-empty string, got {name!r}"
            )
        if not callable(factory):
            raise PluginContractError(
                f"{where}: the factory of {kind} backend {name!r} is not callable (got "
                f"{type(factory).__name__}); pass a function factory(options, context)"
            )
        if options is not None and not attrs.has(options):
            raise PluginContractError(
                f"{where}: the options of {kind} backend {name!r} must be an attrs class "
                f"(got {options!r}); decorate it with @attrs.frozen or pass options=None"
            )
        earlier = self.registry.first(kind, name)
        if earlier is not None and earlier.plugin == self.plugin_name:
            raise PluginContractError(
                f"{where} registers {kind} backend {name!r} twice (the first time as "
                f"{earlier.name!r}): register each backend once, in {BACKENDS_HOOK}; a plugin "
                "that moved to the registrar drops its per-kind registration hooks"
            )
        registration = BackendRegistration(
            kind=kind,
            name=name,
            factory=factory,
            options=options,
            description=description,
            plugin=self.plugin_name,
        )
        self.registry.add(registration, distribution=self.info.distribution)
        self.info.backends.setdefault(kind, []).append(name)


def _make_register(kind: str, registrar: PluginRegistrar) -> Register:
    """The callback a deprecated per-kind registration hook receives: ``registrar.add`` with
    the hook's kind."""

    def register(
        name: str,
        factory: Callable[..., Any],
        options: type | None = None,
        description: str = "",
    ) -> None:
        registrar.add(kind, name, factory, options=options, description=description)

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
