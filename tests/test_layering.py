"""The layers of the core, read from the source with ``ast`` (nothing is imported).

- the contract (``lightmem_hookspecs``, the record store's interface included) imports no
  implementation: the standard library, pluggy and attrs only;
- the stages (``lightmem_core.pipeline``) see interfaces: they import neither the facade nor a
  concrete record store;
- the layers below the stages never import ``pipeline/``;
- the CLI and the evaluation harness use the public API only: no stage or concrete store
  imported, no reaching into a memory's record store, its private members or a backend's
  unwrapped object.

Every import counts, module-level, inside functions or under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import attrs

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "lightmem_core"
CONTRACT = ROOT / "hookspecs" / "lightmem_hookspecs"

#: What the contract may import besides itself.
CONTRACT_DEPENDENCIES = {"pluggy", "attrs"}
#: The facade and what is built on it: the only modules of the core that may use the stages.
ABOVE_THE_STAGES = (
    "lightmem_core",  # the package root re-exports the facade's types
    "lightmem_core.memory",
    "lightmem_core.aio",
    "lightmem_core.cli",
    "lightmem_core.client",
    "lightmem_core.transfer",
    "lightmem_core.service",
    "lightmem_core.eval",
    "lightmem_core.testing",
)
#: Modules the stages must not import: the facade and what is above it, a concrete store.
NOT_FOR_STAGES = (*ABOVE_THE_STAGES[1:], "lightmem_core.store")
#: Internal modules the CLI and the evaluation must not import.
INTERNAL = ("lightmem_core.store", "lightmem_core.backends", "lightmem_core.pipeline")
#: Internal modules they may import all the same, and why.
INTERNAL_ALLOWED = {
    # the raw-turn baselines fuse with the very rrf the pipeline uses, so they compare like
    # with like; a pure function of ranked lists, no stage
    "lightmem_core.pipeline.fusion": "lightmem_core.eval.baselines",
}
#: Attributes that reach past a memory's public API (the record store, a backend's unwrapped
#: object); with the facade's private attributes, read from memory.py below.
REACHING = {"store", "backend"}


@attrs.frozen
class Import:
    module: str  # the importing module
    target: str  # the imported module or name, absolute
    where: str

    def __str__(self) -> str:
        return f"{self.where}: {self.module} imports {self.target}"


def modules(root: Path) -> dict[str, Path]:
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def imports(module: str, path: Path) -> Iterator[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    where = str(path.relative_to(ROOT))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, alias.name, f"{where}:{node.lineno}")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join([*base, node.module] if node.module else base)
            else:
                prefix = node.module or ""
            for alias in node.names:
                yield Import(module, f"{prefix}.{alias.name}", f"{where}:{node.lineno}")


def within(name: str, packages: tuple[str, ...] | set[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def all_imports(root: Path) -> list[Import]:
    return [i for m, p in modules(root).items() for i in imports(m, p)]


def contract_violations(root: Path = CONTRACT) -> list[str]:
    allowed = set(sys.stdlib_module_names) | CONTRACT_DEPENDENCIES | {root.name, "__future__"}
    return [str(i) for i in all_imports(root) if i.target.split(".")[0] not in allowed]


def stage_violations(root: Path = CORE) -> list[str]:
    return [
        str(i)
        for i in all_imports(root)
        if within(i.module, ("lightmem_core.pipeline",)) and within(i.target, NOT_FOR_STAGES)
    ]


def lower_layer_violations(root: Path = CORE) -> list[str]:
    return [
        str(i)
        for i in all_imports(root)
        if not within(i.module, ("lightmem_core.pipeline",))
        and not within(i.module, ABOVE_THE_STAGES[1:])
        and i.module != "lightmem_core"
        and within(i.target, ("lightmem_core.pipeline",))
    ]


def facade_private_attributes(path: Path = CORE / "memory.py") -> set[str]:
    """The private attributes a ``LightMemory`` sets on itself (``self._rt`` ...)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
        and node.attr.startswith("_")
        and not node.attr.startswith("__")
    }


def public_api_violations(root: Path = CORE) -> list[str]:
    users = ("lightmem_core.cli", "lightmem_core.eval")
    found = []
    for module, path in modules(root).items():
        if not within(module, users):
            continue
        for i in imports(module, path):
            allowed = any(
                within(i.target, (name,)) and within(module, (user,))
                for name, user in INTERNAL_ALLOWED.items()
            )
            if within(i.target, INTERNAL) and not allowed:
                found.append(str(i))
        reaching = REACHING | facade_private_attributes(root / "memory.py")
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in reaching
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
            ):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {module} reads .{node.attr}")
    return found


def test_the_contract_imports_no_implementation():
    assert not contract_violations(), "\n".join(contract_violations())


def test_the_record_store_interface_is_in_the_contract():
    assert (CONTRACT / "records.py").is_file()
    assert not (CORE / "records.py").exists()


def test_stages_import_neither_the_facade_nor_a_concrete_store():
    assert not stage_violations(), "\n".join(stage_violations())


def test_lower_layers_never_import_the_stages():
    assert not lower_layer_violations(), "\n".join(lower_layer_violations())


def test_the_cli_and_the_evaluation_use_the_public_api_only():
    assert not public_api_violations(), "\n".join(public_api_violations())


# -- the checks themselves find what they must ------------------------------------------------


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_the_checks_find_each_kind_of_leak(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    root = _package(
        tmp_path,
        {
            "lightmem_hookspecs/__init__.py": "",
            "lightmem_hookspecs/records.py": "import numpy\nfrom . import types\n",
            "lightmem_core/__init__.py": "",
            "lightmem_core/memory.py": "class M:\n    def __init__(self):\n        self._rt = 1\n",
            "lightmem_core/store.py": "",
            "lightmem_core/graph.py": "def f():\n    from .pipeline.retrieval import X\n",
            "lightmem_core/pipeline/__init__.py": "",
            "lightmem_core/pipeline/ingest.py": (
                "import typing\nif typing.TYPE_CHECKING:\n    from ..store import JournalRow\n"
            ),
            "lightmem_core/cli.py": "def run(mem):\n    return mem.store.pending_batches()\n",
            "lightmem_core/eval/__init__.py": "",
            "lightmem_core/eval/economy.py": (
                "from ..backends import Backends\n\ndef f(memory):\n    return memory._rt\n"
            ),
        },
    )
    core = root / "lightmem_core"
    assert contract_violations(root / "lightmem_hookspecs") == [
        "lightmem_hookspecs/records.py:1: lightmem_hookspecs.records imports numpy"
    ]
    assert stage_violations(core) == [
        "lightmem_core/pipeline/ingest.py:3: lightmem_core.pipeline.ingest imports "
        "lightmem_core.store.JournalRow"
    ]
    assert lower_layer_violations(core) == [
        "lightmem_core/graph.py:2: lightmem_core.graph imports lightmem_core.pipeline.retrieval.X"
    ]
    assert sorted(public_api_violations(core)) == [
        "lightmem_core/cli.py:2: lightmem_core.cli reads .store",
        "lightmem_core/eval/economy.py:1: lightmem_core.eval.economy imports "
        "lightmem_core.backends.Backends",
        "lightmem_core/eval/economy.py:4: lightmem_core.eval.economy reads ._rt",
    ]


# -- docs/architecture.md describes every module -----------------------------------------------


def documented_modules(text: str) -> set[str]:
    """The files the module map of docs/architecture.md names, as paths under lightmem_core/
    (the map is an indented tree: a folder line ends with ``/``, two spaces a level)."""
    block = text.split("lightmem_core/ (lightmem-core)\n", 1)[1].split("```", 1)[0]
    found: set[str] = set()
    folders: list[tuple[int, str]] = []
    for line in block.splitlines():
        name = line.strip().split(" ", 1)[0]
        depth = (len(line) - len(line.lstrip())) // 2
        if not (name.endswith(".py") or name.endswith("/")) or depth == 0:
            continue
        folders = [(d, f) for d, f in folders if d < depth]
        path = "".join(f for _, f in folders) + name
        if name.endswith("/"):
            folders.append((depth, name))
        else:
            found.add(path)
    return found


def test_the_architecture_page_describes_every_module():
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    documented = documented_modules(text)
    modules_here = {
        str(p.relative_to(CORE))
        for p in CORE.rglob("*.py")
        if p.name != "__init__.py" or p.parent == CORE
    }
    missing = sorted(modules_here - documented)
    stale = sorted(documented - modules_here)
    assert not missing, f"docs/architecture.md's module map lacks {missing}"
    assert not stale, f"docs/architecture.md's module map names modules that are gone: {stale}"
