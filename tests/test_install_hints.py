"""Every backend a plugin of this repository registers has an install hint, and the hint's
command names the folders that install it (with the repository's own dependencies it needs)."""

from __future__ import annotations

import importlib
import re
import sys
import tomllib
from pathlib import Path

import pytest

from lightmem_core.errors import BackendNotFoundError
from lightmem_core.plugins import KNOWN_PROVIDERS, install_command, normalize_name

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = sorted(ROOT.glob("plugins/*/pyproject.toml"))
#: Installed with the core itself.
WITH_THE_CORE = {"lightmem-hookspecs", "lightmem-core"}


def _requirement_name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[(]", requirement.strip(), maxsplit=1)[0].lower()


def _registrations(pyproject: Path) -> list[tuple[str, str]]:
    from lightmem_core.testing import fresh_host

    project = tomllib.loads(pyproject.read_text())["project"]
    (module_name,) = project["entry-points"]["lightmem.plugins"].values()
    package = module_name.split(".")[0]
    loaded_before = set(sys.modules)
    sys.path.insert(0, str(pyproject.parent))
    try:
        module = importlib.import_module(module_name)
        core = {(r.kind, r.name) for r in fresh_host().registry.all()}  # the built-in backends
        return [
            (r.kind, normalize_name(r.name))
            for r in fresh_host(module).registry.all()
            if (r.kind, r.name) not in core
        ]
    except ImportError as exc:  # a dependency the plugin module needs at import is missing
        pytest.skip(f"{project['name']} cannot be imported here: {exc}")
    finally:
        sys.path.remove(str(pyproject.parent))
        # A plugin imported from its folder must not look installed to later tests of this run
        # (their importorskip would find it, then a subprocess would not).
        for name in set(sys.modules) - loaded_before:
            if name.split(".")[0] == package:
                del sys.modules[name]


@pytest.mark.parametrize("pyproject", PLUGINS, ids=[p.parent.name for p in PLUGINS])
def test_each_backend_of_each_plugin_has_a_hint_that_installs_it(pyproject):
    project = tomllib.loads(pyproject.read_text())["project"]
    dist = project["name"]
    registered = _registrations(pyproject)
    if not registered:
        pytest.skip(f"{dist} registers no backend (a hook plugin): there is nothing to hint")
    for key in registered:
        assert KNOWN_PROVIDERS.get(key) == dist, f"no install hint for {key} of {dist}"
    command = install_command(dist)
    assert command.startswith("pip install -c constraints.txt ")
    folders = command.split()[4:]
    assert folders[-1] == f"./plugins/{pyproject.parent.name}"
    for folder in folders:
        assert (ROOT / folder / "pyproject.toml").is_file(), f"{command}: no project at {folder}"
    installed = {
        tomllib.loads((ROOT / f / "pyproject.toml").read_text())["project"]["name"] for f in folders
    }
    local = {d.parent.name for d in [*PLUGINS, *ROOT.glob("libs/*/pyproject.toml")]}
    needed = {_requirement_name(r) for r in project.get("dependencies", [])}
    missing = (needed & local) - installed - WITH_THE_CORE
    assert not missing, f"{command} does not install {missing}, which {dist} needs"


def test_an_unknown_graph_backend_names_the_command_that_installs_it(tmp_path, ref_host):
    from lightmem_core import LightMemory
    from lightmem_core.testing.reference import reference_config

    config = reference_config(tmp_path, graph_mem=True, graph_memory={"model_name": "networkx"})
    with pytest.raises(BackendNotFoundError) as caught:
        LightMemory(config, host=ref_host)
    assert "pip install -c constraints.txt ./plugins/lightmem-networkx" in str(caught.value)
