"""What a plugin's backend factories are given and what its registrations record.

Kept apart from :mod:`lightmem_hookspecs.types` because a backend's place in the configuration
is named after the table of kinds (:mod:`lightmem_hookspecs.kinds`), which itself builds on the
value types.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import attrs

from .kinds import BACKEND_KINDS

#: The instance names of the first backend of each retrieval kind; with the configuration keys
#: of single backends they keep a plugin's plain storage names (BackendContext.storage_name).
_PRIMARY_INSTANCES = frozenset({"", "embedding", "context", "graph"})


@attrs.frozen
class BackendRegistration:
    """A named backend a plugin provides for one stage kind.

    ``options`` is an attrs class the configuration's ``configs`` mapping is structured into
    (``None``: the backend takes no options). ``factory(options, context)`` builds the backend;
    it runs only when a configuration selects the backend, so heavy imports belong inside it.
    """

    kind: str
    name: str
    factory: Callable[..., Any]
    options: type | None = None
    description: str = ""
    plugin: str = ""


@attrs.define
class BackendContext:
    """What a backend factory gets besides its options.

    ``memory_dir`` is the store's directory (for files a backend keeps). ``shared`` is a dict
    shared by all factories of one ``LightMemory`` so that, e.g., a compressor and a segmenter
    can share one loaded model when ``precomp_topic_shared`` is on. ``get_backend(kind)`` returns
    another configured backend (built on demand), or ``None`` if that stage is not configured.
    ``instance`` names this backend's place in the configuration (``"embedding"``, or a
    retriever's label when several backends of one kind are configured). ``settings`` carries
    memory-wide settings: ``messages_use``; ``kv_cache`` (``True``: the memory manager should
    reuse the KV state of the prompts' static prefix) and ``kv_cache_path`` (a directory it may
    keep that state in).

    Two instances of one backend are kept apart by the backend: one that keeps data in
    ``memory_dir`` (a file, a folder, a collection) under a name its configuration leaves at
    the default uses :meth:`storage_name` of that default; a name the configuration gives is
    used as given.
    """

    memory_dir: str
    precomp_topic_shared: bool = False
    shared: dict[str, Any] = attrs.field(factory=dict)
    get_backend: Callable[[str], Any] = attrs.field(default=lambda kind: None)
    settings: Mapping[str, Any] = attrs.field(factory=dict)
    instance: str = ""

    def storage_name(self, default: str) -> str:
        """The name to keep this instance's data under when the configuration leaves it at
        ``default``: ``default`` itself for the first backend of its kind (instance
        ``embedding``, ``context`` or ``graph``, a kind's own key, the first of a list), so
        existing memories keep their files; else ``default`` with the instance added before
        its extension (``lexical_bm25.sqlite3`` -> ``lexical_bm25-keywords.sqlite3``)."""
        instance = self.instance.removesuffix("[0]")
        if instance in _PRIMARY_INSTANCES or instance in BACKEND_KINDS:
            return default
        tag = re.sub(r"[^A-Za-z0-9_-]+", "_", instance).strip("_") or "instance"
        stem, dot, suffix = default.partition(".")
        return f"{stem}-{tag}{dot}{suffix}"


class Register(Protocol):
    """The registrar passed to a registration hook, bound to one kind and one plugin.

    ``register(name, factory, options=OptionsClass, description="...")`` records a backend:
    ``factory(options, context)`` builds it when a configuration selects ``name`` (heavy
    imports belong inside it); ``options`` is an attrs class the configuration's ``configs``
    are structured into (``None``: the backend takes no options).
    """

    def __call__(
        self,
        name: str,
        factory: Callable[[Any, BackendContext], Any],
        options: type | None = None,
        description: str = "",
    ) -> None: ...
