"""The plugin-author pages run as they are written, against the tutorial's own plugin.

docs/tutorial/writing-a-plugin.md: its pyproject block is the example plugin's pyproject; its
code blocks are the example plugin's code (same definitions, docstrings and comments aside) and,
run as a module of the example package, register a backend the core builds and runs; the
`lightmem plugins` output it shows is what the command prints; the usage example prints what
the page says; the conformance block passes under pytest. docs/plugins/testing.md: every block
passes under pytest.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import tomllib
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = ROOT / "docs" / "tutorial" / "writing-a-plugin.md"
TESTING = ROOT / "docs" / "plugins" / "testing.md"
EXAMPLE = ROOT / "docs" / "tutorial" / "lightmem-example"

pytest.importorskip("lightmem_example", reason="the tutorial's plugin is not installed")

_FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.M | re.S)


def blocks(page: Path, language: str) -> list[str]:
    return [body for lang, body in _FENCE.findall(page.read_text()) if lang == language]


def plain_blocks(page: Path) -> list[str]:
    return blocks(page, "")


def _is_test(code: str) -> bool:
    return bool(re.search(r"^(class Test|def test_)", code, re.M))


def run_pytest(tmp_path: Path, sources: list[str]) -> subprocess.CompletedProcess[str]:
    for i, code in enumerate(sources):
        (tmp_path / f"test_block_{i}.py").write_text(code)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _definitions(tree: ast.Module) -> dict[str, str]:
    """Top-level functions, classes and constants, without docstrings, as ``ast.dump``."""
    out = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
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
            out[node.name] = ast.dump(node)
        elif isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                out[target.id] = ast.dump(node)
    return out


def _plugin_blocks() -> list[str]:
    """The tutorial's code blocks that are the plugin's own code (not tests, not usage)."""
    return [
        code
        for code in blocks(TUTORIAL, "python")
        if not _is_test(code) and "LightMemory" not in code
    ]


# -- the tutorial -----------------------------------------------------------------------------


def test_the_tutorial_pyproject_is_the_example_plugins():
    (shown,) = blocks(TUTORIAL, "toml")
    shown_project = tomllib.loads(shown)["project"]
    real = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    for key, value in shown_project.items():
        assert real[key] == value, f"[project] {key} differs from the example's pyproject.toml"


def test_the_tutorial_code_is_the_example_plugins_code():
    real: dict[str, str] = {}
    for module in ("plugin.py", "compressor.py"):
        real.update(_definitions(ast.parse((EXAMPLE / "lightmem_example" / module).read_text())))
    shown: dict[str, str] = {}
    for code in _plugin_blocks():
        shown.update(_definitions(ast.parse(code)))
    assert {"DEFAULT_FILLERS", "FillerOptions", "build", "FillerFilter"} <= set(shown)
    for name, dump in shown.items():
        assert name in real, f"the tutorial shows {name}, which the example plugin does not have"
        assert dump == real[name], f"the tutorial's {name} differs from the example plugin's"


def test_the_tutorial_code_registers_a_backend_the_core_builds(tmp_path):
    from lightmem_core import LightMemory
    from lightmem_core.testing import fresh_host
    from lightmem_core.testing.reference import ReferencePlugin, reference_config

    module = types.ModuleType("lightmem_example.tutorial")
    module.__package__ = "lightmem_example"  # so `from .compressor import ...` resolves
    for code in _plugin_blocks():
        if "class FillerFilter" not in code:  # the backend itself comes from the package
            exec(compile(code, str(TUTORIAL), "exec"), module.__dict__)
    host = fresh_host(ReferencePlugin(), module)
    config = reference_config(
        tmp_path,
        pre_compress=True,
        pre_compressor={"model_name": "filler-filter", "configs": {"fillers": ["um", "like"]}},
    )
    with LightMemory(config, host=host) as memory:
        memory.add([{"role": "user", "content": "Um, my dog is, like, called Rex"}])
        assert [e.memory for e in memory.get_all()] == ["my dog is, called Rex"]


def test_the_plugins_command_prints_what_the_tutorial_shows():
    shown = next(b for b in plain_blocks(TUTORIAL) if "filler-filter" in b)
    out = subprocess.run(
        [sys.executable, "-m", "lightmem_core.cli", "plugins"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert shown.strip() in out, f"`lightmem plugins` printed:\n{out}"


@pytest.mark.slow
def test_the_tutorial_usage_example_prints_what_it_says(tmp_path):
    for module in ("lightmem_huggingface", "lightmem_qdrant", "lightmem_sqlite_index"):
        pytest.importorskip(module, reason="the example uses the embedded default")
    (usage,) = [c for c in blocks(TUTORIAL, "python") if "LightMemory" in c]
    expected = next(b for b in plain_blocks(TUTORIAL) if b.startswith("["))
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", usage],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == expected.strip()


def test_the_tutorial_conformance_block_passes(tmp_path):
    tests = [c for c in blocks(TUTORIAL, "python") if _is_test(c)]
    assert tests, "the tutorial has no test block"
    result = run_pytest(tmp_path, tests)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout and "failed" not in result.stdout


# -- the testing page -------------------------------------------------------------------------


def test_every_block_of_the_testing_page_passes(tmp_path):
    sources = blocks(TESTING, "python")
    assert len(sources) >= 3
    assert all(_is_test(code) for code in sources), "a block of testing.md is not a test"
    result = run_pytest(tmp_path, sources)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = result.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary and "error" not in summary, summary
