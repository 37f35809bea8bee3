"""Option validators come from one shared vocabulary (lightmem_hookspecs.options) and their
refusals reach the user as typed problems (path, message, suggestion): nothing is formatted as
"name: message" and parsed back. No plugin imports another plugin."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import attrs
import pytest
from lightmem_hookspecs.options import (
    OptionError,
    at_least,
    choice,
    in_range,
    non_negative,
    not_blank,
    positive,
    tcp_port,
    unit_interval,
)

from lightmem_core import ConfigError, ConfigProblem
from lightmem_core.config import resolve, structure

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_DIRS = sorted(p.parent for p in ROOT.glob("plugins/*/pyproject.toml"))
LIB_DIRS = sorted(p.parent for p in ROOT.glob("libs/*/pyproject.toml"))


def _package(folder: Path) -> Path:
    found = [p.parent for p in folder.glob("lightmem_*/__init__.py")]
    assert len(found) == 1, f"{folder}: expected one lightmem_* package, found {found}"
    return found[0]


PLUGIN_PACKAGES = {_package(d).name: _package(d) for d in PLUGIN_DIRS}


def test_a_refusal_is_a_typed_problem_with_its_path_and_a_suggestion(ref_host):
    bad = {"sensory_buffer_tokens": 0, "graph": {"similarity": 2.0}, "messages_use": "all"}
    with pytest.raises(ConfigError) as info:
        resolve(bad, ref_host)
    problems = {p.path: p for p in info.value.problems}
    assert problems["$.sensory_buffer_tokens"] == ConfigProblem(
        "$.sensory_buffer_tokens",
        "must be > 0, got 0",
        "leave sensory_buffer_tokens out for its default (512)",
    )
    assert problems["$.graph.similarity"].message == "must be between 0 and 1, got 2.0"
    assert problems["$.messages_use"].message.startswith("expected one of 'user_only'")
    # the lines are the problems, written out
    assert info.value.errors == [str(p) for p in info.value.problems]
    assert "$.sensory_buffer_tokens: must be > 0, got 0; leave sensory_buffer_tokens out" in str(
        info.value
    )


def test_a_backend_option_is_refused_at_its_path_in_the_chain(ref_host):
    config = {
        "text_embedder": {"model_name": "hash"},
        "embedding_retriever": {"model_name": "exact"},
        "context_retriever": {"model_name": "keyword"},
        "reranker": [{"model_name": "newer_first", "configs": {"score_ratio": -1}}],
    }
    with pytest.raises(ConfigError) as info:
        resolve(config, ref_host)
    (problem,) = info.value.problems
    assert problem.path == "$.reranker[0].configs.score_ratio"
    assert problem.message == "must be between 0 and 1, got -1.0"
    assert problem.suggestion == "leave score_ratio out for its default (0.4)"


@attrs.frozen
class _Inner:
    pairs: dict = attrs.field(factory=dict)

    @pairs.validator
    def _check(self, attribute, value):
        for key, item in value.items():
            if item < 0:
                raise OptionError.at(attribute, f"got {item}", "use a count", within=f".{key}")


@attrs.frozen
class _Options:
    count: int = attrs.field(default=3, validator=positive)
    share: float = attrs.field(default=0.5, validator=unit_interval)
    mode: str = attrs.field(default="fast", validator=choice("fast", "exact"))
    odd: int = attrs.field(default=1)
    inner: _Inner = attrs.field(factory=_Inner)

    @odd.validator
    def _odd(self, attribute, value):
        if value % 2 == 0:
            raise ValueError(f"{attribute.name}: must be odd, got {value}")


def test_every_problem_of_an_options_class_at_once_each_at_its_path():
    with pytest.raises(ConfigError) as info:
        structure(
            {"count": 0, "share": 7, "mode": "exakt", "odd": 2, "inner": {"pairs": {"a": -1}}},
            _Options,
            path="$.x.configs",
        )
    found = {p.path: (p.message, p.suggestion) for p in info.value.problems}
    assert found == {
        "$.x.configs.count": ("must be > 0, got 0", "leave count out for its default (3)"),
        "$.x.configs.share": (
            "must be between 0 and 1, got 7.0",
            "leave share out for its default (0.5)",
        ),
        "$.x.configs.mode": (
            "must be one of 'fast', 'exact', got 'exakt'",
            "did you mean 'exact'?",
        ),
        # a validator outside the vocabulary: its text, unparsed, at the option's path
        "$.x.configs.odd": ("odd: must be odd, got 2", None),
        # a problem inside an option's value: the validator extends the path
        "$.x.configs.inner.pairs.a": ("got -1", "use a count"),
    }


@pytest.mark.parametrize(
    ("validator", "bad", "good"),
    [
        (positive, [0, -1, math.nan, math.inf], [None, 1, 0.5]),
        (non_negative, [-1, math.nan], [None, 0, 2]),
        (at_least(8), [7, math.nan], [None, 8, 9.5]),
        (in_range(-1.0, 1.0), [-1.5, 1.01, math.nan], [None, -1.0, 0, 1.0]),
        (in_range(0.0, 1.0, low_open=True), [0.0, 1.5], [1e-9, 1.0]),
        (unit_interval, [-0.1, 1.1, math.nan], [None, 0.0, 1.0]),
        (choice("a", None), ["b", 1], ["a", None]),
        (not_blank, ["", "  \t"], [None, "x"]),
        (tcp_port, [0, 65536], [None, 1, 65535]),
    ],
)
def test_the_shared_validators(validator, bad, good):
    field = attrs.fields(_Options).count  # any attribute: the validators read its name, default
    for value in good:
        validator(None, field, value)
    for value in bad:
        with pytest.raises(OptionError) as info:
            validator(None, field, value)
        assert info.value.option == "count" and info.value.message
        assert str(info.value).startswith("count: ")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("folder", [*PLUGIN_DIRS, *LIB_DIRS], ids=lambda p: p.name)
def test_no_plugin_imports_another_plugin(folder):
    own = _package(folder).name
    offending = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in _package(folder).rglob("*.py")
        for name in _imports(path)
        if name in PLUGIN_PACKAGES and name != own
    }
    assert not offending, f"imports of another plugin: {sorted(offending)}"


def _validators(path: Path) -> list[ast.FunctionDef]:
    """Functions shaped as attrs validators: ``(instance, attribute, value)``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef)
        and [a.arg for a in node.args.args][-2:] == ["attribute", "value"]
    ]


SHIPPED = [
    *(p for d in PLUGIN_DIRS for p in _package(d).rglob("*.py")),
    *(p for d in LIB_DIRS for p in _package(d).rglob("*.py")),
    ROOT / "lightmem_core" / "config.py",
    ROOT / "lightmem_core" / "builtin.py",
    ROOT / "lightmem_core" / "recency.py",
]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_shipped_validators_raise_typed_problems_and_copy_none_of_the_vocabulary(path):
    generic = {"positive", "non_negative", "unit", "unit_interval", "share", "cosine", "window",
               "port", "not_blank", "not_empty", "file_name", "one_of", "range", "at_least_one",
               "finite", "optional_unit", "optional_ttl"}  # fmt: skip
    for function in _validators(path):
        copied = function.name.lstrip("_")
        assert copied not in generic, (
            f"{path.name}: {function.name} copies a validator of lightmem_hookspecs.options"
        )
        for node in ast.walk(function):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
                called = node.exc.func
                name = called.id if isinstance(called, ast.Name) else None
                assert name not in ("ValueError", "TypeError"), (
                    f"{path.name}: {function.name} raises {name}; raise OptionError.at(...) "
                    "with a suggestion instead"
                )
