"""Shared fixtures of the core's tests."""

from __future__ import annotations

import contextlib

import pytest

from lightmem_core.testing import fresh_host
from lightmem_core.testing.reference import ReferencePlugin, reference_config


@pytest.fixture
def ref_host():
    """A host with only the built-in and reference backends (no installed plugins)."""
    import lightmem_core.builtin as builtin

    return fresh_host(builtin, ReferencePlugin())


@pytest.fixture
def make_memory(tmp_path, ref_host):
    """Build a LightMemory on the reference backends in a temporary directory."""
    from lightmem_core import LightMemory

    opened = []

    def make(**overrides):
        mem = LightMemory(reference_config(tmp_path / "mem", **overrides), host=ref_host)
        opened.append(mem)
        return mem

    yield make
    for mem in opened:
        with contextlib.suppress(Exception):
            mem.close()


@pytest.fixture
def billed_llm_config(tmp_path, openai_server):
    """A configuration whose memory manager is the loopback server answering as the scripted
    model and billing tokens as OpenAI does; tests add their own keys."""
    from lightmem_core.eval.economy import Billed, ScriptedResponder

    openai_server.responder = Billed(ScriptedResponder())
    return {
        "memory_manager": {
            "model_name": "openai",
            "configs": {
                "model": "gpt-4o-mini",
                "api_key": "sk-test-billed",
                "openai_base_url": openai_server.base_url,
            },
        },
        "memory_dir": str(tmp_path / "mem"),
    }
