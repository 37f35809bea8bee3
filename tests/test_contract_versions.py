"""A plugin built for an incompatible contract is refused at discovery, naming the versions and
what changed; a backend that lacks Protocol members is refused naming them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from lightmem_hookspecs import CONTRACT_VERSION, hookimpl

from lightmem_core import LightMemory
from lightmem_core.errors import BackendNotFoundError, PluginContractError
from lightmem_core.plugins import PluginHost
from lightmem_core.testing.distributions import Distribution, install_distributions
from lightmem_core.testing.reference import ReferencePlugin, reference_config

#: A graph plugin written for contract 0.1: add(entries) and search(query) -> (id, score).
OLD_GRAPH = """
from lightmem_hookspecs import hookimpl

class TinyGraph:
    def __init__(self):
        self.entries = {}
    def add(self, entries):
        self.entries.update({e.id: e.memory for e in entries})
    def search(self, query, *, limit, filter=None):
        return [(i, 1.0) for i, text in self.entries.items() if query in text][:limit]
    def delete(self, ids):
        pass
    def close(self):
        pass

@hookimpl
def lightmem_register_graph_memories(register):
    register("tinygraph", lambda options, context: TinyGraph())
"""

CURRENT = """
from lightmem_hookspecs import hookimpl
LIGHTMEM_CONTRACT = "{contract}"

class Upper:
    def compress(self, texts):
        return [t.upper() for t in texts]

@hookimpl
def lightmem_register_pre_compressors(register):
    register("{name}", lambda options, context: Upper())
"""

DISTRIBUTIONS = [
    Distribution(
        "lightmem-tinygraph",
        "lightmem_tinygraph",
        OLD_GRAPH,
        entry_points={"tinygraph": "lightmem_tinygraph"},
        dependencies=("lightmem-hookspecs>=0.1.0",),
    ),
    Distribution(
        "lm-declared",
        "lm_declared",
        CURRENT.format(contract="1.0", name="upper"),
        # an old lower bound: the declared attribute says what it was built for
        dependencies=("lightmem-hookspecs>=0.1.0",),
    ),
    Distribution(
        "lm-pinned",
        "lm_pinned",
        CURRENT.replace('LIGHTMEM_CONTRACT = "{contract}"', "").format(name="pinned"),
        dependencies=("lightmem-hookspecs>=1.0,<2",),
    ),
    Distribution(
        "lm-capped",
        "lm_capped",
        CURRENT.replace('LIGHTMEM_CONTRACT = "{contract}"', "").format(name="capped"),
        dependencies=("lightmem-hookspecs>=0.1,<1",),
    ),
    Distribution(
        "lm-future",
        "lm_future",
        CURRENT.format(contract="1.99", name="future"),
    ),
]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return install_distributions(tmp_path_factory.mktemp("contract"), DISTRIBUTIONS)


def _run(site: Path, code: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIGHTMEM_")}
    env["PYTHONPATH"] = str(site)
    env["LIGHTMEM_PLUGINS"] = "tinygraph,lm-declared,lm-pinned,lm-capped,lm-future,lightmem-core"
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


DISCOVER = """
import json
from lightmem_core.plugins import PluginHost
host = PluginHost()
host.registry
print(json.dumps({k: v.to_dict() for k, v in host.plugins.items()}))
"""


@pytest.mark.slow
def test_plugins_are_accepted_or_refused_at_discovery_by_their_contract(site):
    plugins = _run(site, DISCOVER)
    old = plugins["tinygraph"]["error"]
    assert "'tinygraph' (lightmem-tinygraph 0.1.0)" in old
    assert "lightmem-hookspecs>=0.1.0" in old or "built for contract 0.1.0" in old
    assert f"contract {CONTRACT_VERSION}" in old and "GraphMemory was redesigned" in old
    assert plugins["tinygraph"]["backends"] == {}, "a refused plugin registers nothing"

    assert plugins["lm-declared"]["error"] is None
    assert plugins["lm-declared"]["contract"] == "1.0"
    assert plugins["lm-declared"]["backends"] == {"pre_compressor": ["upper"]}
    assert plugins["lm-pinned"]["error"] is None and plugins["lm-pinned"]["contract"] == "1.0"

    capped = plugins["lm-capped"]["error"]
    assert "requires lightmem-hookspecs" in capped and "<1" in capped
    assert CONTRACT_VERSION in capped and "GraphMemory was redesigned" in capped
    future = plugins["lm-future"]["error"]
    assert "built for contract 1.99" in future and "upgrade lightmem-core" in future


@pytest.mark.slow
def test_selecting_a_refused_plugin_fails_when_the_memory_opens_naming_the_refusal(site, tmp_path):
    code = f"""
    import json
    from lightmem_core import LightMemory
    from lightmem_core.errors import BackendNotFoundError
    from lightmem_core.testing.reference import reference_config
    cfg = reference_config({str(tmp_path / "m")!r}, graph_mem=True,
                           graph_memory={{"model_name": "tinygraph"}})
    try:
        LightMemory(cfg)
    except BackendNotFoundError as exc:
        print(json.dumps(str(exc)))
    """
    message = _run(site, code)
    assert "tinygraph" in message and "built for contract 0.1.0" in message
    assert "does not implement" not in message


class UndeclaredGraph:
    """A graph plugin that says nothing of its contract, written for the old GraphMemory."""

    @hookimpl
    def lightmem_register_graph_memories(self, register):
        register("tinygraph", lambda options, context: _OldGraph())


class _OldGraph:
    def add(self, entries):
        pass

    def search(self, query, *, limit, filter=None):
        return []

    def delete(self, ids):
        pass

    def close(self):
        pass


def test_a_backend_missing_protocol_members_is_refused_naming_them(tmp_path):
    host = PluginHost(autoload=False)
    host.register(ReferencePlugin(), "reference")
    host.register(UndeclaredGraph(), "tinygraph", distribution="lightmem-tinygraph", version="0.1")
    config = reference_config(
        tmp_path / "m", graph_mem=True, graph_memory={"model_name": "tinygraph"}
    )
    with pytest.raises(PluginContractError) as caught, LightMemory(config, host=host) as mem:
        mem.add_memory([{"role": "user", "content": "Alice lives in Berlin."}])
        mem.retrieve("Where does Alice live?")
    message = str(caught.value)
    assert "$.graph_memory" in message and "'tinygraph' (lightmem-tinygraph 0.1)" in message
    for member in ("entry_counts", "entry_ids", "index", "resolve", "relations", "count"):
        assert member in message
    assert "does not say which contract" in message and CONTRACT_VERSION in message
    assert not isinstance(caught.value, BackendNotFoundError)


def test_a_hand_registered_plugin_built_for_an_old_contract_is_refused():
    class Old:
        LIGHTMEM_CONTRACT = "0.1"

        @hookimpl
        def lightmem_register_rerankers(self, register):
            register("old", lambda o, c: None)

    host = PluginHost(autoload=False)
    info = host.register(Old(), "old")
    assert info.error is not None and "built for contract 0.1" in info.error
    assert host.registry.names("reranker") == []


def test_every_shipped_plugin_declares_the_current_contract():
    host = PluginHost(autoload=True, only=None)
    shipped = [p for p in host.plugins.values() if (p.distribution or "").startswith("lightmem-")]
    assert shipped
    for info in shipped:
        assert info.error is None, info.error
        assert info.contract is not None, f"{info.name} declares no contract version"


@pytest.mark.parametrize(
    ("requirement", "satisfied", "built_for"),
    [
        ("lightmem-hookspecs>=1.0,<2", True, "1.0"),
        ("lightmem-hookspecs >= 0.1.0", True, "0.1.0"),
        ("lightmem-hookspecs<1,>=0.1", False, "0.1"),
        ("lightmem-hookspecs~=1.0", True, "1.0"),
        ("lightmem-hookspecs~=0.1.0", False, "0.1.0"),
        ("lightmem-hookspecs==1.*", True, "1.*"),
        ("lightmem-hookspecs[extra]>1.2", False, "1.2"),
    ],
)
def test_requirement_specifiers_are_read_like_pip_reads_them(requirement, satisfied, built_for):
    from lightmem_core.plugins import _satisfies, _specifiers

    specs = _specifiers(requirement)
    assert _satisfies("1.0.0", specs) is satisfied
    lowest = [v for op, v in specs if op in (">=", "==", "~=", ">")]
    assert (min(lowest) if lowest else None) == built_for
