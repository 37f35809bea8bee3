"""docs/plugins/reference.md is what docs/gen_reference.py writes from the contract today."""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path

import attrs
import lightmem_hookspecs as contract

ROOT = Path(__file__).resolve().parents[1]


def _generator():
    spec = importlib.util.spec_from_file_location(
        "gen_reference", ROOT / "docs" / "gen_reference.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_reference_is_what_the_contract_generates():
    generated = _generator().render()
    committed = (ROOT / "docs" / "plugins" / "reference.md").read_text(encoding="utf-8")
    assert committed == generated, (
        "docs/plugins/reference.md differs from the contract: run python docs/gen_reference.py"
    )


def test_the_reference_names_every_protocol_method_value_type_and_filter_field():
    page = _generator().render()
    for kind, protocol in contract.PROTOCOLS.items():
        assert f"`{protocol.__name__}` — `{kind}`" in page
        for name, member in vars(protocol).items():
            if inspect.isfunction(member) and not name.startswith("_"):
                assert f"def {name}(" in page, f"{protocol.__name__}.{name} is missing"
    for name in contract.__all__:
        obj = getattr(contract, name)
        if isinstance(obj, type) and attrs.has(obj):
            assert f"### `{name}`" in page
    for field in attrs.fields(contract.SearchFilter):
        assert f"| `{field.name}` |" in page
    for key in ("user_id", "agent_id", "run_id", "speaker", "topic_id", "time_stamp"):
        assert f"| `{key}` | `" in page
