"""The contract's version and the rule that decides which plugins it accepts.

``lightmem-hookspecs`` follows semantic versioning, and its version *is* the contract version:

* a **major** version removes or changes something plugins use (a hook's signature, a
  Protocol member, a value type's field) or adds a member every backend of a kind must have;
* a **minor** version only adds (a hook, a kind, a Protocol, an optional field);
* a **patch** version changes no public surface (docs, fixes).

A plugin says which contract it was built for in one of two ways (the first found wins):

1. ``LIGHTMEM_CONTRACT = "1.0"`` on the object its ``lightmem.plugins`` entry point names
   (the plugin module), or
2. the lowest version its distribution's requirement on ``lightmem-hookspecs`` admits
   (``lightmem-hookspecs>=1.0,<2`` means built for 1.0).

The core refuses, at discovery, a plugin built for another major version or for a newer
minor version than the one installed (for 0.x versions every minor is a major), and a plugin
whose requirement on ``lightmem-hookspecs`` the installed version does not satisfy. The
refusal names the plugin, both versions and what changed in between
(:data:`BREAKING_CHANGES`). A plugin that declares neither is loaded as it is.
"""

from __future__ import annotations

import re

#: The version of this contract (and of the ``lightmem-hookspecs`` distribution).
CONTRACT_VERSION = "1.12.0"

#: The name of the attribute a plugin declares the contract it was built for with.
CONTRACT_ATTRIBUTE = "LIGHTMEM_CONTRACT"

#: The name of the attribute a hook plugin declares its options class with (an attrs class:
#: the ``options`` of ``hooks: [{plugin: name, options: {...}}]`` are validated by it, with
#: ``$.hooks[i].options...`` errors, and handed over in ``HookContext.options`` as a mapping of
#: its fields, defaults filled in).
HOOK_OPTIONS_ATTRIBUTE = "LIGHTMEM_HOOK_OPTIONS"

#: The distribution that carries the contract.
CONTRACT_DISTRIBUTION = "lightmem-hookspecs"

#: Per version, one line per change that breaks plugins built for an earlier one (the
#: CHANGELOG's migration notes say how to adapt). Shown when a plugin is refused.
BREAKING_CHANGES: dict[str, tuple[str, ...]] = {
    "1.0.0": (
        "GraphMemory was redesigned: index(entry_ids, entities, relations), delete(entry_ids), "
        "entry_ids(), resolve(), entities(), relations(), search(seeds, ...) returning GraphHit "
        "values, entry_counts() and count() replace add(entries) and search(query) -> (id, score)",
        "lightmem_register_multimodal_embedders and the MultimodalEmbedder Protocol were removed",
        "every runtime hook receives context (a HookContext); lightmem_run_operation too",
    ),
}

_VERSION = re.compile(r"^\s*(\d+)(?:\.(\d+))?(?:\.(\d+))?")


def parse_version(text: str) -> tuple[int, int, int]:
    """``"1.2.3"`` -> ``(1, 2, 3)``; missing parts are 0, anything after them is ignored."""
    match = _VERSION.match(str(text))
    if match is None:
        raise ValueError(f"not a contract version: {text!r} (expected e.g. '1.0')")
    return tuple(int(part or 0) for part in match.groups())  # type: ignore[return-value]


def _line(version: tuple[int, int, int]) -> tuple[int, ...]:
    """What must be equal for two versions to be compatible: the major version, and the minor
    one too below 1.0."""
    return version[:2] if version[0] == 0 else version[:1]


def compatible(built_for: str, running: str = CONTRACT_VERSION) -> bool:
    """Whether a plugin built for contract ``built_for`` works with contract ``running``."""
    b, r = parse_version(built_for), parse_version(running)
    return _line(b) == _line(r) and b[:2] <= r[:2]


def changes_between(built_for: str, running: str = CONTRACT_VERSION) -> list[str]:
    """The breaking changes a plugin built for ``built_for`` misses (versions after it, up to
    ``running``), oldest first, each prefixed with its version."""
    b, r = parse_version(built_for), parse_version(running)
    out = []
    for version, changes in sorted(BREAKING_CHANGES.items(), key=lambda i: parse_version(i[0])):
        v = parse_version(version)
        if b < v <= r or r < v <= b:
            out += [f"{version}: {change}" for change in changes]
    return out
