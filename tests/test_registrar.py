"""The typed backend registrar is tied to the table of kinds, refuses bad registrations naming
the plugin, and the per-kind registration hooks it replaces keep working with a warning."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import textwrap
import typing
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from lightmem_hookspecs import (
    BACKEND_KINDS,
    KINDS,
    BackendContext,
    BackendRegistrar,
    hookimpl,
    registrar,
    specs,
)

from lightmem_core.errors import PluginContractError
from lightmem_core.plugins import PluginRegistrar
from lightmem_core.testing.distributions import Distribution, install_distributions

PUBLIC = {
    name
    for name, value in vars(BackendRegistrar).items()
    if inspect.isfunction(value) and not name.startswith("_")
}


def test_the_registrar_has_one_method_per_kind_and_no_other():
    assert PUBLIC - {"add"} == set(BACKEND_KINDS), (
        "BackendRegistrar's methods and KINDS disagree: "
        f"rows without a method {sorted(set(BACKEND_KINDS) - PUBLIC)}, "
        f"methods without a row {sorted(PUBLIC - {'add'} - set(BACKEND_KINDS))}"
    )
    assert BackendRegistrar.add.__isabstractmethod__  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_each_method_is_typed_with_its_kinds_protocol(kind):
    method = getattr(BackendRegistrar, kind.name)
    hints = typing.get_type_hints(method, vars(registrar) | _protocols())
    assert hints["factory"] == Callable[[Any, BackendContext], kind.protocol]
    assert hints["name"] is str and hints["description"] is str
    assert hints["options"] == type | None and hints["return"] is type(None)
    params = inspect.signature(method).parameters
    assert [p for p, v in params.items() if v.kind is v.KEYWORD_ONLY] == ["options", "description"]
    assert list(params) == list(inspect.signature(BackendRegistrar.add).parameters)[:1] + [
        p for p in inspect.signature(BackendRegistrar.add).parameters if p not in ("self", "kind")
    ]


def _protocols() -> dict[str, Any]:
    import lightmem_hookspecs

    return {k.protocol.__name__: k.protocol for k in KINDS} | {
        "BackendContext": lightmem_hookspecs.BackendContext
    }


def test_each_method_records_a_backend_of_its_kind(ref_host):
    class Every:
        @hookimpl
        def lightmem_register_backends(self, registrar):
            for kind in BACKEND_KINDS:
                getattr(registrar, kind)(f"every-{kind}", lambda o, c: None, description=kind)

    info = ref_host.register(Every(), "every")
    registry = ref_host.registry
    assert info.error is None and info.deprecated == []
    for kind in BACKEND_KINDS:
        found = registry.get(kind, f"every-{kind}")
        assert found is not None and found.kind == kind and found.description == kind
        assert found.plugin == "every"
    assert info.backends == {kind: [f"every-{kind}"] for kind in BACKEND_KINDS}


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda r: r.add("vector_store", "x", lambda o, c: None), ["'vector_store'", "reranker"]),
        (lambda r: r.reranker("  ", lambda o, c: None), ["non-empty string"]),
        (lambda r: r.reranker("x", "not a function"), ["not callable", "factory(options"]),
        (lambda r: r.reranker("x", lambda o, c: None, options=dict), ["attrs class"]),
    ],
)
def test_a_bad_registration_is_refused_naming_the_plugin(ref_host, call, words):
    class Bad:
        @hookimpl
        def lightmem_register_backends(self, registrar):
            registrar.reranker("fine", lambda o, c: None)
            call(registrar)

    info = ref_host.register(Bad(), "bad-plugin")
    assert ref_host.registry.get("reranker", "fine") is not None
    assert info.error is not None and "lightmem_register_backends failed" in info.error
    assert "PluginContractError" in info.error and "'bad-plugin'" in info.error
    for word in words:
        assert word in info.error
    # the other plugins' backends are unaffected
    assert ref_host.registry.get("text_embedder", "hash") is not None


def test_a_plugin_on_both_hooks_is_told_to_drop_the_per_kind_one(ref_host):
    class Both:
        @hookimpl
        def lightmem_register_backends(self, registrar):
            registrar.reranker("twice", lambda o, c: None)

        @hookimpl
        def lightmem_register_rerankers(self, register):
            register("TWICE", lambda o, c: None)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        info = ref_host.register(Both(), "both")
    assert ref_host.registry.get("reranker", "twice") is not None  # the first one stands
    assert info.error is not None and "lightmem_register_rerankers failed" in info.error
    assert "'both' registers reranker backend 'TWICE' twice" in info.error
    assert "drops its per-kind registration hooks" in info.error
    assert ref_host.registry.conflicts == []


def test_the_registrar_raises_a_typed_error(ref_host):
    from lightmem_core.plugins import BackendRegistry, PluginInfo

    r = PluginRegistrar("p", PluginInfo(name="p"), BackendRegistry())
    with pytest.raises(PluginContractError, match="not a backend kind"):
        r.add("nope", "x", lambda o, c: None)


def test_a_per_kind_hook_warns_naming_the_plugin_the_hook_and_the_new_call(ref_host):
    class Old:
        @hookimpl
        def lightmem_register_rerankers(self, register):
            register("old-reverse", lambda o, c: None, description="old style")

    with pytest.warns(DeprecationWarning) as caught:
        info = ref_host.register(Old(), "old-style")
    ours = [w for w in caught if "old-style" in str(w.message)]
    assert len(ours) == 1
    message = str(ours[0].message)
    assert "lightmem_register_rerankers" in message and "registrar.reranker(" in message
    assert "lightmem_register_backends" in message
    assert ours[0].filename == __file__  # attributed to the plugin's own function
    assert info.deprecated == [message]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # building the registry does not warn again
        registration = ref_host.registry.get("reranker", "old-reverse")
    assert registration is not None and registration.description == "old style"
    assert info.backends == {"reranker": ["old-reverse"]}


def test_the_per_kind_hooks_are_the_kinds_and_the_new_hook_is_a_spec():
    assert {k.hook for k in KINDS if k.hook} <= set(dir(specs))
    assert "lightmem_register_backends" in dir(specs)
    assert "registrar" in inspect.signature(specs.lightmem_register_backends).parameters


def test_a_kind_without_a_per_kind_hook_registers_through_the_registrar(ref_host, monkeypatch):
    """A kind added after 1.7 has no per-kind hook (``hook == ""``): its row and its registrar
    method are all it needs."""
    import lightmem_core.plugins as plugins

    without = {k: h for k, h in plugins.REGISTRATION_HOOKS.items() if k != "reranker"}
    monkeypatch.setattr(plugins, "REGISTRATION_HOOKS", without)

    class Late:
        @hookimpl
        def lightmem_register_backends(self, registrar):
            registrar.reranker("late", lambda o, c: None)

    info = ref_host.register(Late(), "late")
    assert ref_host.registry.get("reranker", "late") is not None
    assert info.backends == {"reranker": ["late"]} and info.error is None


#: A plugin distribution written for contract 1.6: it registers a reranker through the
#: per-kind hook.
OLD_STYLE = """
from lightmem_hookspecs import hookimpl
LIGHTMEM_CONTRACT = "1.6"
CALLS = []

class Reverse:
    def rerank(self, query, hits, *, limit):
        CALLS.append(query)
        return list(reversed(hits))[:limit]

@hookimpl
def lightmem_register_rerankers(register):
    register("reverse", lambda options, context: Reverse(), description="reverses the hits")
"""

RUN = """
import json, warnings
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("default")  # what a user running with -W default sees
    from lightmem_core import LightMemory
    from lightmem_core.plugins import PluginHost
    from lightmem_core.testing.reference import ReferencePlugin, reference_config
    import lm_oldstyle
    host = PluginHost()
    host.register(ReferencePlugin(), "reference")
    cfg = reference_config({memory_dir!r}, reranker={{"model_name": "reverse"}},
                           memory_manager={{"model_name": "scripted"}})
    with LightMemory(cfg, host=host) as mem:
        mem.add_memory([{{"role": "user", "content": "My dog is called Biscuit"}},
                        {{"role": "user", "content": "I like green tea"}}],
                       force_segment=True, force_extract=True)
        hits = [h.entry.memory for h in mem.search("dog", limit=2)]
    PluginHost().registry  # a second host in the process
    seen = [str(w.message) for w in caught
            if issubclass(w.category, DeprecationWarning) and "oldstyle" in str(w.message)]
from lightmem_core.cli import main
main(["plugins"])
print(json.dumps({{"info": host.plugins["oldstyle"].to_dict(), "calls": lm_oldstyle.CALLS,
                   "warnings": seen}}))
"""


@pytest.mark.slow
def test_a_plugin_on_a_per_kind_hook_registers_warns_once_and_works(tmp_path):
    site = install_distributions(
        tmp_path,
        [
            Distribution(
                "lm-oldstyle", "lm_oldstyle", OLD_STYLE, entry_points={"oldstyle": "lm_oldstyle"}
            )
        ],
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIGHTMEM_")}
    env["PYTHONPATH"] = str(site)
    env["LIGHTMEM_PLUGINS"] = "oldstyle,lightmem-core"
    code = textwrap.dedent(RUN.format(memory_dir=str(tmp_path / "m")))
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    *printed, last = out.stdout.strip().splitlines()
    result = json.loads(last)
    info = result["info"]
    assert info["error"] is None and info["backends"] == {"reranker": ["reverse"]}
    assert result["calls"] == ["dog"], "the old-style reranker ran"
    # once per process: a second host does not repeat it
    assert len(result["warnings"]) == 1, result["warnings"]
    assert "registrar.reranker(" in result["warnings"][0]
    listing = "\n".join(printed)
    assert "oldstyle  (lm-oldstyle 0.1.0, contract 1.6)" in listing
    assert "DEPRECATED: plugin 'oldstyle' implements lightmem_register_rerankers" in listing


#: A plugin author's registration, type-checked: the right factory passes; a factory that
#: returns something else, one given to another kind's method and options given by position
#: are errors on the lines marked ``# error``.
TYPED = """
from collections.abc import Sequence

from lightmem_hookspecs import BackendContext, BackendRegistrar, hookimpl


class Embedder:
    model_name = "m"
    dimension = 3

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [[0.0, 0.0, 1.0] for _ in texts]


def good(options: None, context: BackendContext) -> Embedder:
    return Embedder()


def bad(options: None, context: BackendContext) -> str:
    return "not an embedder"


@hookimpl
def lightmem_register_backends(registrar: BackendRegistrar) -> None:
    registrar.text_embedder("good", good, description="fine")
    registrar.add("text_embedder", "by-name", good)
    registrar.text_embedder("bad", bad)  # error
    registrar.reranker("wrong-kind", good)  # error
    registrar.text_embedder("positional", good, None)  # error
"""


@pytest.mark.slow
def test_a_type_checker_sees_the_registrars_types(tmp_path):
    (tmp_path / "plug.py").write_text(TYPED)
    hookspecs = Path(__file__).resolve().parents[1] / "hookspecs"
    env = {**os.environ, "MYPYPATH": str(hookspecs)}
    command = [sys.executable, "-m", "mypy", "--no-incremental", "--no-error-summary"]
    out = subprocess.run(
        [*command, "--cache-dir", str(tmp_path / "c"), "plug.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    flagged = {int(line.split(":")[1]) for line in out.stdout.splitlines() if ": error:" in line}
    expected = {i for i, line in enumerate(TYPED.splitlines(), 1) if line.endswith("# error")}
    assert flagged == expected, out.stdout
