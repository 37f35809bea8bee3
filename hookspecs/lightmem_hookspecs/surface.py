"""The contract's public surface as sorted text lines, and the version bump a change needs.

Every line is one promise plugins rely on::

    hook lightmem_register_rerankers(register: Register) -> None
    protocol Reranker.rerank(self, query: str, hits: Sequence[SearchHit], *, limit: int) -> ...
    type SearchHit.paths: dict[str, list[str]] = Factory(dict)
    function normalize_name(name: str) -> str
    constant OPERATION_NAMES = ('add_memory', ...)
    kind reranker: lightmem_register_rerankers -> Reranker
    capability record_store: EntryFacets
    class BackendRegistrar.reranker(self, name: str, factory: ..., *, options: ...) -> None

``python -m lightmem_hookspecs.surface`` prints it; ``--write PATH`` stores it with the
version, the snapshot a test compares against (see the CHANGELOG for the procedure).
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Iterable
from typing import Any

import attrs

_PROTOCOL_BASES = {"Protocol", "Generic", "object"}

#: Exports that are not promises to plugins: the version (the snapshot's header), the
#: versioning helpers (their defaults change with every version) and tables derived from
#: ``KINDS`` (listed as ``kind`` lines).
_NOT_SURFACE = {
    "CONTRACT_VERSION",
    "__version__",
    "BREAKING_CHANGES",
    "changes_between",
    "compatible",
    "parse_version",
    "KINDS",
    "KINDS_BY_NAME",
    "PROTOCOLS",
    "BACKEND_KINDS",
    "RETRIEVER_KINDS",
}


def _is_protocol(obj: Any) -> bool:
    return isinstance(obj, type) and bool(getattr(obj, "_is_protocol", False))


def _signature(func: Any) -> str:
    try:
        return str(inspect.signature(func))
    except (TypeError, ValueError):
        return "(...)"


def _default(value: Any) -> str:
    if value is attrs.NOTHING:
        return ""
    if isinstance(value, attrs.Factory):  # type: ignore[arg-type]
        name = getattr(value.factory, "__name__", "factory")
        return f" = Factory({'<lambda>' if name == '<lambda>' else name})"
    if callable(value):
        return " = <callable>"
    return f" = {value!r}"


def _protocol_lines(name: str, cls: type) -> list[str]:
    lines = [f"protocol {name}"]
    own: dict[str, Any] = {}
    for base in reversed(cls.__mro__):
        if base.__name__ in _PROTOCOL_BASES:
            continue
        own.update(vars(base))
        for attr, annotation in getattr(base, "__annotations__", {}).items():
            lines.append(f"protocol {name}.{attr}: {annotation}")
    for attr, value in sorted(own.items()):
        if attr.startswith("_") and attr != "__call__":
            continue
        if callable(value):
            lines.append(f"protocol {name}.{attr}{_signature(value)}")
    return lines


def _type_lines(name: str, cls: type) -> list[str]:
    lines = [f"type {name}"]
    for field in attrs.fields(cls):
        lines.append(f"type {name}.{field.name}: {field.type}{_default(field.default)}")
    for attr, value in sorted(vars(cls).items()):
        if attr.startswith("_"):
            continue
        if isinstance(value, property):
            lines.append(f"type {name}.{attr} (property)")
        elif inspect.isfunction(value):
            lines.append(f"type {name}.{attr}{_signature(value)}")
    return lines


def _object_lines(name: str, obj: Any) -> list[str]:
    if _is_protocol(obj):
        return _protocol_lines(name, obj)
    if isinstance(obj, type) and attrs.has(obj):
        return _type_lines(name, obj)
    if isinstance(obj, type):
        methods = sorted(
            (attr, value)
            for attr, value in vars(obj).items()
            if inspect.isfunction(value) and not attr.startswith("_")
        )
        return [f"class {name}"] + [f"class {name}.{a}{_signature(v)}" for a, v in methods]
    if inspect.isfunction(obj):
        return [f"function {name}{_signature(obj)}"]
    if inspect.ismodule(obj) or (callable(obj) and hasattr(obj, "project_name")):
        return []  # submodules and the pluggy markers are listed through their contents
    if isinstance(obj, str | int | float | tuple | frozenset):
        return [f"constant {name} = {obj!r}"]
    if isinstance(obj, dict):
        shown = {k: getattr(v, "__name__", v) for k, v in obj.items()}
        return [f"constant {name} = {shown!r}"]
    return [f"object {name}: {type(obj).__name__}"]


def _public(module: Any) -> Iterable[tuple[str, Any]]:
    names = getattr(module, "__all__", None) or [n for n in vars(module) if not n.startswith("_")]
    for name in names:
        yield name, getattr(module, name)


def surface_lines() -> list[str]:
    """The contract's public surface, one sorted line per promise."""
    import lightmem_hookspecs as contract
    from lightmem_hookspecs import graph, kinds, markers, options, specs

    lines: set[str] = set()
    for name, obj in _public(contract):
        if name in _NOT_SURFACE:
            continue
        lines.update(_object_lines(name, obj))
    for name, obj in _public(graph):
        if getattr(contract, name, None) is obj:
            continue  # exported by the package too: listed once, under its short name
        if getattr(obj, "__module__", graph.__name__) == graph.__name__:
            lines.update(_object_lines(f"graph.{name}", obj))
    for name, obj in _public(options):
        if getattr(obj, "__module__", options.__name__) == options.__name__:
            lines.update(_object_lines(f"options.{name}", obj))
    for name in dir(specs):
        if name.startswith(f"{markers.PROJECT_NAME}_"):
            func = getattr(specs, name)
            opts = getattr(func, f"{markers.PROJECT_NAME}_spec", {})
            flags = sorted(k for k, v in opts.items() if v is True)
            suffix = f" [{', '.join(flags)}]" if flags else ""
            lines.add(f"hook {name}{_signature(func)}{suffix}")
    for kind in kinds.KINDS:
        retriever = f" retriever={kind.retriever}" if kind.retriever else ""
        hook = kind.hook or "registrar only"
        lines.add(f"kind {kind.name}: {hook} -> {kind.protocol.__name__}{retriever}")
        for capability in kind.capabilities:
            lines.add(f"capability {kind.name}: {capability.__name__}")
    return sorted(lines)


# -- the snapshot --------------------------------------------------------------------------

HEADER = "# lightmem-hookspecs contract surface, version "


def render(version: str, lines: Iterable[str]) -> str:
    return f"{HEADER}{version}\n" + "".join(f"{line}\n" for line in lines)


def parse(text: str) -> tuple[str, list[str]]:
    """A snapshot file's text -> (version, surface lines)."""
    first, _, rest = text.partition("\n")
    if not first.startswith(HEADER):
        raise ValueError(f"not a contract surface snapshot (first line {first!r})")
    return first[len(HEADER) :].strip(), [line for line in rest.splitlines() if line]


def _owner(line: str) -> str | None:
    """The Protocol a ``protocol X.member`` line belongs to (``None`` for other lines)."""
    if not line.startswith("protocol "):
        return None
    head = line[len("protocol ") :]
    name = head.split(".", 1)[0].split(":", 1)[0].split("(", 1)[0]
    return name if "." in head.split("(", 1)[0].split(":", 1)[0] else None


def required_bump(old: Iterable[str], new: Iterable[str]) -> str | None:
    """The smallest version bump from a surface ``old`` to ``new``: ``"major"`` when a line
    went away or changed, a Protocol that existed gained a member (its implementations lack
    it) or a value type a field without a default; ``"minor"`` when lines were only added;
    ``None`` when nothing changed."""
    old_set, new_set = set(old), set(new)
    if old_set == new_set:
        return None
    if old_set - new_set:
        return "major"
    old_protocols = {
        line.split()[1] for line in old_set if line.startswith("protocol ") and _owner(line) is None
    }
    old_types = {
        line.split()[1] for line in old_set if line.startswith("type ") and "." not in line
    }
    for line in new_set - old_set:
        owner = _owner(line)
        if owner is not None and owner in old_protocols:
            return "major"  # every existing implementation lacks the new member
        head = line.split()[1] if line.startswith("type ") else ""
        required_field = ":" in head and " = " not in line
        if required_field and head.split(".", 1)[0] in old_types:
            return "major"  # every existing constructor call lacks the new field
    return "minor"


def bump_satisfied(old_version: str, new_version: str, bump: str | None) -> bool:
    """Whether going from ``old_version`` to ``new_version`` is the ``bump`` needed (below
    1.0 a minor version counts as a major one)."""
    from .contract import parse_version

    o, n = parse_version(old_version), parse_version(new_version)
    if bump is None:
        return n >= o
    if bump == "major":
        return n[0] > o[0] or (o[0] == 0 and n[0] == 0 and n[1] > o[1])
    return n[:2] > o[:2]


def main(argv: list[str]) -> int:
    from .contract import CONTRACT_VERSION

    if argv[:1] == ["--write"] and len(argv) == 2:
        with open(argv[1], "w", encoding="utf-8") as f:
            f.write(render(CONTRACT_VERSION, surface_lines()))
        return 0
    sys.stdout.write(render(CONTRACT_VERSION, surface_lines()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
