"""No import cycles in the contract, the core or any plugin package.

Imports are read from the source (nothing is imported): module-level ones, those inside
functions and those under ``TYPE_CHECKING`` all count, because each is a dependency that makes
the two modules one unit whichever way it is written.
"""

from __future__ import annotations

import ast
from pathlib import Path

import attrs

ROOT = Path(__file__).resolve().parents[1]


@attrs.frozen
class Edge:
    source: str
    target: str
    where: str  # "path:line"


def package_roots() -> list[Path]:
    """The folders of every package of the project: the contract, the core, plugins, libraries."""
    roots = [ROOT / "hookspecs" / "lightmem_hookspecs", ROOT / "lightmem_core"]
    for dist in distributions():
        roots += sorted(p.parent for p in dist.glob("*/__init__.py"))
    return roots


def distributions() -> list[Path]:
    """The folders of the plugin and library distributions (and the tutorial's plugin)."""
    found = [*(ROOT / "plugins").iterdir(), *(ROOT / "libs").iterdir()]
    found.append(ROOT / "docs" / "tutorial" / "lightmem-example")
    return sorted(d for d in found if (d / "pyproject.toml").is_file())


def module_files(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of the package at ``root``."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _absolute(module: str, is_package: bool, level: int, name: str | None) -> str:
    if level == 0:
        return name or ""
    base = module.split(".")
    if not is_package:
        base.pop()
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, name] if name else base)


def imports_of(module: str, path: Path, known: set[str], top: Path = ROOT) -> list[Edge]:
    """The modules among ``known`` that ``module`` imports anywhere in its source."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    is_package = path.name == "__init__.py"
    rel = path.relative_to(top)
    edges = []

    def add(target: str, line: int) -> None:
        # The nearest module that exists: `a.b.C` (a class) is an import of module `a.b`.
        while target and target not in known:
            target = target.rpartition(".")[0]
        if target and target != module:
            edges.append(Edge(module, target, f"{rel}:{line}"))

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(module, is_package, node.level, node.module)
            for alias in node.names:
                target = f"{base}.{alias.name}"
                add(target if target in known else base, node.lineno)
    return edges


def import_graph() -> dict[str, list[Edge]]:
    files: dict[str, Path] = {}
    for root in package_roots():
        files.update(module_files(root))
    known = set(files)
    return {m: imports_of(m, p, known) for m, p in files.items()}


def cycles(graph: dict[str, list[Edge]]) -> list[list[Edge]]:
    """One cycle (as the edges that close it) for each strongly connected group of modules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for e in graph[v]:
            if e.target not in index:
                visit(e.target)
                low[v] = min(low[v], low[e.target])
            elif e.target in on_stack:
                low[v] = min(low[v], index[e.target])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_one_cycle(graph, g) for g in groups]


def _one_cycle(graph: dict[str, list[Edge]], group: set[str]) -> list[Edge]:
    """The shortest path inside ``group`` from its first module back to itself."""
    start = min(group)
    paths: dict[str, list[Edge]] = {start: []}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for e in graph[v]:
                if e.target not in group:
                    continue
                if e.target == start:
                    return [*paths[v], e]
                if e.target not in paths:
                    paths[e.target] = [*paths[v], e]
                    nxt.append(e.target)
        frontier = nxt
    raise AssertionError(f"no cycle through {start} in {sorted(group)}")


def describe(cycle: list[Edge]) -> str:
    return "\n".join(f"  {e.source} -> {e.target}  ({e.where})" for e in cycle)


def test_every_package_is_read():
    graph = import_graph()
    assert "lightmem_hookspecs.protocols" in graph
    assert "lightmem_core" in graph
    names = {m.split(".")[0] for m in graph}
    for dist in distributions():
        assert dist.name.replace("-", "_") in names


def test_the_checker_finds_a_cycle_through_a_function_level_import(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("import typing\nif typing.TYPE_CHECKING:\n    from .b import B\n")
    (pkg / "b.py").write_text("def f():\n    from pkg import c\n")
    (pkg / "c.py").write_text("from .a import X\n")
    files = module_files(pkg)
    graph = {m: imports_of(m, p, set(files), top=tmp_path) for m, p in files.items()}
    found = cycles(graph)
    assert len(found) == 1
    assert [e.source for e in found[0]] == ["pkg.a", "pkg.b", "pkg.c"]


def test_no_import_cycles():
    found = cycles(import_graph())
    message = "\n\n".join(f"import cycle:\n{describe(c)}" for c in found)
    assert not found, message
