"""Shared fixtures of the core's tests."""

from __future__ import annotations

import contextlib
import threading

import pytest

from lightmem_core.testing import fresh_host
from lightmem_core.testing.reference import ReferencePlugin, reference_config


@pytest.fixture
def llm():
    """The testing kit's scripted memory manager: queue answers with ``llm.queue(...)`` or set
    ``llm.responder``; read ``llm.requests``. ``ref_host`` serves it as ``scripted``. Its
    answers are limited to 2000 tokens, as a hosted backend's are by default."""
    from lightmem_core.testing.scripted import ScriptedMemoryManager

    return ScriptedMemoryManager(max_tokens=2000)


@pytest.fixture
def ref_host(llm):
    """A host with only the built-in and reference backends (no installed plugins); its
    memory manager ``scripted`` is the ``llm`` fixture."""
    import lightmem_core.builtin as builtin

    return fresh_host(builtin, ReferencePlugin(memory_manager=llm))


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
def scripted_config(tmp_path, llm):
    """A configuration on the reference backends whose memory manager is the ``llm`` fixture,
    answering as the scripted model (build memories on ``ref_host``); tests add their keys."""
    from lightmem_core.eval.economy import ScriptedResponder

    llm.responder = ScriptedResponder()
    return reference_config(tmp_path / "mem", memory_manager={"model_name": "scripted"})


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


class GatedModel:
    """The scripted model, merging every pair it is shown; an update-decision request is
    counted (``calls``), says it arrived (``asked``) and waits for ``gate`` before answering."""

    def __init__(self) -> None:
        from lightmem_core.eval.economy import ScriptedResponder

        self.inner = ScriptedResponder(update_fraction=1.0)
        self.asked = threading.Event()
        self.gate = threading.Event()
        self.calls = 0

    def __call__(self, body):
        schema = body.get("response_format", {}).get("json_schema", {}).get("schema", {})
        if schema.get("title") == "lightmem_update_decisions":
            self.calls += 1
            self.asked.set()
            self.gate.wait(10)
        return self.inner(body)


@pytest.fixture
def loopback_memory(tmp_path, openai_server):
    """``make(responder, **keys) -> memory``: a memory on the reference backends whose LLM is
    the loopback server answering as ``responder`` (no background retrier); ``keys`` are
    further configuration keys."""
    pytest.importorskip("lightmem_openai", reason="the openai plugin is not installed")
    from lightmem_core import LightMemory
    from lightmem_core.plugins import PluginHost

    def make(responder, **keys):
        host = PluginHost()
        host.register(ReferencePlugin())
        openai_server.responder = responder
        config = reference_config(
            tmp_path / "mem",
            memory_manager={
                "model_name": "openai",
                "configs": {
                    "model": "gpt-4o-mini",
                    "api_key": "sk-test",
                    "openai_base_url": openai_server.base_url,
                },
            },
            background_retry=False,
            **keys,
        )
        return LightMemory(config, host=host)

    return make


class ChangedMeanwhile:
    """How the application changes an entry while an update's model decides about it."""

    RED = "My favourite colour is red."

    def __init__(self, how: str) -> None:
        self.how = how

    def change(self, mem, entry_id: str) -> None:
        """The application's write (it does not wait for the model either)."""
        if self.how == "edit":
            mem.update(entry_id, self.RED, reason="the user said so")
        else:
            mem.delete(entry_id)

    def check(self, mem, entry_id: str) -> None:
        """The model's decision was not applied over the change, nor applied twice."""
        events = [h["action"].lower() for h in mem.history(entry_id)]
        if self.how == "edit":
            assert mem.get(entry_id).memory == self.RED  # not overwritten
            assert events.count("update") == 1  # the application's, not a second one
        else:
            assert mem.get(entry_id).status == "deleted"
            assert events.count("update") == 0 and events.count("delete") == 1


@pytest.fixture(params=["edit", "delete"])
def meanwhile(request):
    """A :class:`ChangedMeanwhile`: an edit, then a deletion."""
    return ChangedMeanwhile(request.param)


@pytest.fixture
def gated_memory(loopback_memory):
    """``make(**keys) -> (memory, model)``: a ``loopback_memory`` answering as a
    :class:`GatedModel`; the gate opens and the memory closes at teardown."""
    made: list = []

    def make(**keys):
        model = GatedModel()
        mem = loopback_memory(model, **keys)
        made.append((mem, model))
        return mem, model

    yield make
    for mem, model in made:
        model.gate.set()
        mem.close()
