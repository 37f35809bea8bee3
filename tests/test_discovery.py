"""Plugin discovery through real entry points of pip-installed distributions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lightmem_core.testing.distributions import Distribution, install_distributions

PLUGINS = {
    "lm-good": (
        "lm_good",
        """
        import attrs
        from lightmem_hookspecs import hookimpl

        @attrs.frozen
        class ShoutOptions:
            suffix: str = "!"

        class Shout:
            def __init__(self, suffix):
                self.suffix = suffix
            def compress(self, texts):
                return [t.upper() + self.suffix for t in texts]

        @hookimpl
        def lightmem_register_pre_compressors(register):
            register("shout", lambda o, c: Shout(o.suffix), options=ShoutOptions)
        """,
    ),
    "lm-broken": ("lm_broken", "import this_module_does_not_exist\n"),
    "lm-dup": (
        "lm_dup",
        """
        from lightmem_hookspecs import hookimpl

        @hookimpl
        def lightmem_register_pre_compressors(register):
            register("SHOUT", lambda o, c: None)
        """,
    ),
    "lm-typo": (
        "lm_typo",
        """
        from lightmem_hookspecs import hookimpl

        @hookimpl
        def lightmem_register_pre_compresors(register):
            pass
        """,
    ),
}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """Third-party plugins pip-installed into a folder of their own."""
    return install_distributions(
        tmp_path_factory.mktemp("plugins"),
        [Distribution(d, p, c, version="1.2.3") for d, (p, c) in PLUGINS.items()],
    )


def _run(site: Path, code: str, **env: str) -> dict:
    full_env = {**os.environ, "PYTHONPATH": str(site), **env}
    for key in ("LIGHTMEM_PLUGINS", "LIGHTMEM_DISABLE_PLUGIN_AUTOLOAD"):
        if key not in env:
            full_env.pop(key, None)
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=full_env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


LIST = """
import json
from lightmem_core.plugins import PluginHost
host = PluginHost()
reg = host.registry
print(json.dumps({"plugins": {k: v.to_dict() for k, v in host.plugins.items()},
                  "conflicts": reg.conflicts}))
"""


@pytest.mark.slow
def test_broken_plugin_is_recorded_and_the_rest_load(site):
    data = _run(site, LIST, LIGHTMEM_PLUGINS="lm-good,lm-broken")
    plugins = data["plugins"]
    assert plugins["lm-good"]["backends"] == {"pre_compressor": ["shout"]}
    assert plugins["lm-good"]["distribution"] == "lm-good"
    assert plugins["lm-good"]["version"] == "1.2.3"
    assert "this_module_does_not_exist" in plugins["lm-broken"]["error"]
    assert set(plugins) == {"lm-good", "lm-broken"}


@pytest.mark.slow
def test_duplicate_backend_names_both_distributions(site):
    data = _run(site, LIST, LIGHTMEM_PLUGINS="lm-good,lm-dup")
    [conflict] = data["conflicts"]
    assert "lm-good" in conflict and "lm-dup" in conflict and "shout" in conflict.lower()


@pytest.mark.slow
def test_misspelt_hook_is_caught(site):
    data = _run(site, LIST, LIGHTMEM_PLUGINS="lm-typo")
    error = data["plugins"]["lm-typo"]["error"]
    assert "lightmem_register_pre_compresors" in error and "misspelt" in error


@pytest.mark.slow
def test_autoload_can_be_disabled(site):
    data = _run(site, LIST, LIGHTMEM_DISABLE_PLUGIN_AUTOLOAD="1")
    assert data["plugins"] == {}


@pytest.mark.slow
def test_third_party_backend_selected_by_config_without_core_change(site, tmp_path):
    code = f"""
    import json
    from lightmem_core import LightMemory
    from lightmem_core.plugins import PluginHost
    from lightmem_core.testing.reference import ReferencePlugin, reference_config
    host = PluginHost()
    host.register(ReferencePlugin(), "reference")
    cfg = reference_config({str(tmp_path / "m")!r}, pre_compress=True,
        pre_compressor={{"model_name": "shout", "configs": {{"suffix": "?"}}}})
    with LightMemory(cfg, host=host) as mem:
        mem.add_memory([{{"role": "user", "content": "hello there"}}],
                       force_segment=True, force_extract=True)
        print(json.dumps([e.memory for e in mem.get_all()]))
    """
    assert _run(site, code, LIGHTMEM_PLUGINS="lm-good,lightmem-core") == ["HELLO THERE?"]


def test_discovery_and_validation_import_no_heavy_library():
    code = """
    import json, sys, time
    t0 = time.perf_counter()
    import lightmem_core
    from lightmem_core.plugins import PluginHost, heavy_modules_loaded
    from lightmem_core.config import resolve
    host = PluginHost()
    host.registry
    elapsed = time.perf_counter() - t0
    original = {
        "pre_compress": False, "topic_segment": True, "precomp_topic_shared": False,
        "topic_segmenter": {"model_name": "embedding"}, "messages_use": "user_only",
        "metadata_generate": True, "text_summary": True, "extract_threshold": 0.1,
        "index_strategy": "embedding", "retrieve_strategy": "embedding",
        "update": "offline", "history_db_path": "/tmp/x/history.db",
    }
    try:
        resolve(original, host)
    except Exception as exc:  # backends may be missing in a core-only environment
        print(type(exc).__name__, file=sys.stderr)
    print(json.dumps({"heavy": heavy_modules_loaded(), "seconds": elapsed}))
    """
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=True
    )
    data = json.loads(out.stdout.strip().splitlines()[-1])
    assert data["heavy"] == []
