"""No code is copied between plugin and library distributions: shared code lives in one of them.

Two kinds of copy are looked for in every pair of modules of different distributions (the
plugins under plugins/, the libraries under libs/, the tutorial's plugin): the same function or
class (ignoring docstrings and comments) of six lines or more, and a module half of whose lines
stand in the other. Implementing the same Protocol method gives the same signature, not the
same body, so it is not a copy.
"""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MIN_LINES = 6
SHARED_SHARE = 0.5


def _without_docstrings(node: ast.AST) -> ast.AST:
    for sub in ast.walk(node):
        body = getattr(sub, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            sub.body = body[1:] or [ast.Pass()]  # type: ignore[attr-defined]
    return node


def distributions() -> list[Path]:
    found = [*(ROOT / "plugins").iterdir(), *(ROOT / "libs").iterdir()]
    found.append(ROOT / "docs" / "tutorial" / "lightmem-example")
    return sorted(d for d in found if (d / "pyproject.toml").is_file())


def definitions(path: Path, root: Path) -> dict[str, str]:
    """``ast.dump`` of each function and class of ``path`` with six lines or more, by name."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        if (node.end_lineno or node.lineno) - node.lineno + 1 >= MIN_LINES:
            name = f"{path.relative_to(root)}:{node.lineno} {node.name}"
            out[name] = ast.dump(_without_docstrings(node))
    return out


def code_lines(path: Path) -> set[str]:
    """The module's lines of code, stripped: no blanks, comments, imports or lone punctuation."""
    out = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        text = line.strip()
        if text.startswith(("#", "import ", "from ")) or not any(c.isalnum() for c in text):
            continue
        out.add(text)
    return out


def modules_by_distribution(roots: list[Path]) -> dict[str, list[Path]]:
    return {d.name: sorted(p for p in d.rglob("*.py") if "build" not in p.parts) for d in roots}


def copies(by_dist: dict[str, list[Path]], root: Path = ROOT) -> list[str]:
    found = []
    defs = {
        d: {k: v for p in paths for k, v in definitions(p, root).items()}
        for d, paths in by_dist.items()
    }
    lines = {p: code_lines(p) for paths in by_dist.values() for p in paths}
    for a, b in itertools.combinations(sorted(by_dist), 2):
        same = {v: k for k, v in defs[a].items()}
        found += [f"{same[v]} == {k}" for k, v in defs[b].items() if v in same]
        for pa, pb in itertools.product(by_dist[a], by_dist[b]):
            small = min(len(lines[pa]), len(lines[pb]))
            shared = len(lines[pa] & lines[pb])
            if small >= MIN_LINES and shared >= SHARED_SHARE * small:
                found.append(
                    f"{pa.relative_to(root)} and {pb.relative_to(root)} share {shared} of "
                    f"{small} lines"
                )
    return found


def test_the_check_finds_a_copied_module_and_a_copied_function(tmp_path):
    body = "\n".join(f"    total += {i} * value" for i in range(8))
    helper = f"def helper(value):\n    total = 0\n{body}\n    return total\n"
    for dist in ("one", "two"):
        (tmp_path / dist).mkdir()
    (tmp_path / "one" / "words.py").write_text(helper)
    (tmp_path / "two" / "words.py").write_text('"""A copy."""\n\n' + helper)
    (tmp_path / "two" / "other.py").write_text(f"X = 1\n\n\n{helper.replace('helper', 'renamed')}")
    found = copies(modules_by_distribution([tmp_path / "one", tmp_path / "two"]), tmp_path)
    assert any("one/words.py:1 helper == two/words.py:3 helper" in f for f in found), found
    assert any("one/words.py and two/words.py share" in f for f in found), found
    assert not any("other.py:" in f and "==" in f for f in found), found  # renamed: not the same


def test_no_code_is_copied_between_plugins():
    found = copies(modules_by_distribution(distributions()))
    assert not found, "copied between distributions (move it into libs/):\n" + "\n".join(found)
