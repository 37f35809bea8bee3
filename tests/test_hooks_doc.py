"""docs/plugins/hooks.md is what docs/gen_hooks.py writes from the hook specifications today."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from lightmem_hookspecs import specs

ROOT = Path(__file__).resolve().parents[1]


def _generator():
    spec = importlib.util.spec_from_file_location("gen_hooks", ROOT / "docs" / "gen_hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_hooks_page_is_what_the_specs_generate():
    generated = _generator().render()
    committed = (ROOT / "docs" / "plugins" / "hooks.md").read_text(encoding="utf-8")
    assert committed == generated, (
        "docs/plugins/hooks.md differs from the hook specifications: run python docs/gen_hooks.py"
    )


def test_the_page_follows_a_changed_docstring(monkeypatch):
    generator = _generator()
    hook = specs.lightmem_query_prepared
    monkeypatch.setattr(hook, "__doc__", "Changed.\n\n:param query: q\n:param context: c\n")
    assert "Changed." in generator.render()
    assert generator.render() != (ROOT / "docs" / "plugins" / "hooks.md").read_text()
