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


def test_every_optional_capability_is_a_kinds_and_on_the_page():
    """A backend Protocol (of ``protocols.py`` or ``records.py``) that no kind is built from
    is an optional capability of a kind (``BackendKind.capabilities``), and the page shows it
    under that kind with its methods (one several kinds share: under the first, and named
    under the others)."""
    page = _generator().render()
    kind_protocols = set(contract.PROTOCOLS.values())
    capabilities: dict[type, list[str]] = {}
    for k in contract.KINDS:
        for c in k.capabilities:
            capabilities.setdefault(c, []).append(k.name)
    exported = [
        obj
        for obj in (getattr(contract, name) for name in contract.__all__)
        if isinstance(obj, type) and getattr(obj, "_is_protocol", False)
        if obj.__module__ in {"lightmem_hookspecs.protocols", "lightmem_hookspecs.records"}
    ]
    optional = [p for p in exported if p not in kind_protocols]
    assert {
        "EntryFacets",
        "EntryRestore",
        "ScopeErase",
        "VectorBulkLoad",
        "VectorRecreate",
        "TextBulkLoad",
        "TextReset",
        "IndexCompaction",
        "SchemaInPrompt",
        "CacheStats",
        "Closeable",
        "EveryStrategy",
        "TopOnly",
        "AnswerLimit",
    } <= {p.__name__ for p in optional}

    def section_of(kind: str) -> str:
        section = page.split(f"### `{contract.PROTOCOLS[kind].__name__}` — `{kind}`", 1)[1]
        return section.split("\n### ", 1)[0]

    for protocol in optional:
        assert protocol in capabilities, f"{protocol.__name__} is in no kind's capabilities"
        assert getattr(protocol, "_is_runtime_protocol", False), protocol.__name__
        first, *others = capabilities[protocol]
        section = section_of(first)
        assert f"#### Optional: `{protocol.__name__}`" in section
        for name, member in vars(protocol).items():
            if inspect.isfunction(member) and not name.startswith("_"):
                assert f"def {name}(" in section, f"{protocol.__name__}.{name} is missing"
        for name in getattr(protocol, "__annotations__", {}):
            assert f"`{name}`" in section, f"{protocol.__name__}.{name} is missing"
        for kind in others:
            assert f"#### Optional: `{protocol.__name__}`" in section_of(kind), kind
