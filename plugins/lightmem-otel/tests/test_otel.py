"""Spans from a real LightMemory run, caught by the OpenTelemetry SDK's in-memory exporter."""

from __future__ import annotations

import lightmem_otel.plugin as otel
import pytest
from lightmem_hookspecs import OPERATION_NAMES, hookimpl
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import lightmem_core.builtin as builtin
from lightmem_core import LightMemory
from lightmem_core.eval.economy import scripted_responder
from lightmem_core.plugins import PluginHost
from lightmem_core.testing import fresh_host
from lightmem_core.testing.reference import ReferencePlugin, reference_config
from lightmem_core.testing.scripted import ScriptedMemoryManager

DOG = [
    {"role": "user", "content": "My dog Rex learned to swim this summer."},
    {"role": "assistant", "content": "That is great news about Rex."},
]


@pytest.fixture(scope="session")
def exporter():
    """One SDK tracer provider for the session (OpenTelemetry allows one global provider)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return exporter


@pytest.fixture
def spans(exporter):
    exporter.clear()
    yield exporter
    exporter.clear()


class Upper:
    def compress(self, texts):
        return [t.upper() for t in texts]


class Reverse:
    def rerank(self, query, hits, *, limit):
        return list(reversed(hits))[:limit]


class UpperPlugin:
    @hookimpl
    def lightmem_register_backends(self, registrar):
        registrar.pre_compressor("upper", lambda o, c: Upper())
        registrar.reranker("reverse", lambda o, c: Reverse())


@pytest.fixture
def host():
    llm = ScriptedMemoryManager(max_tokens=2000)
    llm.responder = scripted_responder
    host = fresh_host(builtin, ReferencePlugin(memory_manager=llm), UpperPlugin())
    host.register(otel, "otel")
    return host


def _memory(host, tmp_path, **overrides):
    settings = {
        "hooks": [{"plugin": "otel", "options": {"tracer_name": "test.lightmem"}}],
        "reranker": {"model_name": "reverse"},
        "pre_compress": True,
        "pre_compressor": {"model_name": "upper"},
        "topic_segment": True,
        "memory_manager": {"model_name": "scripted"},
    }
    config = reference_config(tmp_path / "mem", **{**settings, **overrides})
    return LightMemory(config, host=host)


def _run_everything(mem):
    mem.add_memory(
        [*DOG, {"role": "user", "content": "I moved to Berlin"}],
        force_segment=True,
        force_extract=True,
        user_id="alice",
    )
    mem.construct_update_queue_all_entries()
    mem.offline_update_all_entries(0.1)
    return mem.search("dog", limit=2, user_id="alice")


def test_the_plugin_is_discovered_through_its_entry_point():
    host = PluginHost(only=["otel"])
    info = host.plugins["otel"]
    assert info.error is None and info.distribution == "lightmem-otel"
    assert "otel" in host.hook_plugins()


def test_every_operation_becomes_a_span(host, tmp_path, spans):
    with _memory(host, tmp_path) as mem:
        _run_everything(mem)
    names = {s.name for s in spans.get_finished_spans()}
    expected = {f"lightmem.{name}" for name in OPERATION_NAMES}
    assert expected <= names, sorted(expected - names)
    assert {s.instrumentation_scope.name for s in spans.get_finished_spans()} == {"test.lightmem"}


def test_spans_nest_and_carry_usage_backend_and_scope(host, tmp_path, spans):
    with _memory(host, tmp_path) as mem:
        mem.add_memory(DOG, force_segment=True, force_extract=True, user_id="alice")
        mem.search("dog", limit=2, user_id="alice")
    finished = spans.get_finished_spans()
    by_id = {s.context.span_id: s for s in finished}
    [add] = [s for s in finished if s.name == "lightmem.add_memory"]
    completes = [s for s in finished if s.name == "lightmem.llm.complete"]
    assert completes, "the extraction called the LLM"
    for span in completes:
        assert span.attributes["lightmem.backend"] == "scripted"
        assert span.attributes["gen_ai.usage.input_tokens"] > 0
        assert span.attributes["gen_ai.usage.output_tokens"] > 0
        ancestor = span
        while ancestor.parent is not None and ancestor.parent.span_id in by_id:
            ancestor = by_id[ancestor.parent.span_id]
        assert ancestor is add, "an llm.complete span runs inside the add_memory span"
    # the outer span totals what ran inside it
    assert add.attributes["gen_ai.usage.input_tokens"] == sum(
        s.attributes["gen_ai.usage.input_tokens"] for s in completes
    )
    assert add.attributes["lightmem.user_id"] == "alice"
    searches = [s for s in finished if s.name == "lightmem.search"]
    assert {s.attributes["lightmem.backend"] for s in searches} >= {"exact", "keyword"}
    [retrieve] = [s for s in finished if s.name == "lightmem.retrieve"]
    assert all(s.parent.span_id == retrieve.context.span_id for s in searches)
    assert retrieve.attributes["lightmem.usage.embedded_texts"] == 1
    [rerank] = [s for s in finished if s.name == "lightmem.rerank"]
    assert rerank.attributes["lightmem.backend"] == "reverse"


class Failing:
    def rerank(self, query, hits, *, limit):
        raise RuntimeError("reranker down")


class FailingPlugin:
    @hookimpl
    def lightmem_register_backends(self, registrar):
        registrar.reranker("failing", lambda o, c: Failing())


def test_an_error_marks_the_span(host, tmp_path, spans):
    from opentelemetry.trace import StatusCode

    host.register(FailingPlugin(), "failing-plugin")
    with _memory(host, tmp_path, reranker={"model_name": "failing"}) as mem:
        mem.add_memory(DOG, force_segment=True, force_extract=True)
        with pytest.raises(Exception, match="reranker down"):
            mem.search("dog", limit=2)
    [rerank] = [s for s in spans.get_finished_spans() if s.name == "lightmem.rerank"]
    assert rerank.status.status_code is StatusCode.ERROR
    assert "reranker down" in rerank.status.description
    assert any(e.name == "exception" for e in rerank.events)


def test_spans_come_only_from_memories_that_select_the_plugin(host, tmp_path, spans):
    config = reference_config(tmp_path / "plain")
    with LightMemory(config, host=host) as mem:
        mem.add_memory(DOG, force_segment=True, force_extract=True)
        mem.search("dog", limit=2)
    assert spans.get_finished_spans() == ()


def test_options_are_validated_with_the_declared_class_when_the_memory_opens(host, tmp_path):
    from lightmem_core.errors import ConfigError

    bad = [{"plugin": "otel", "options": {"tracer_name": "", "detials": True}}]
    with pytest.raises(ConfigError) as caught:
        LightMemory(reference_config(tmp_path / "m", hooks=bad), host=host)
    message = str(caught.value)
    assert "$.hooks[0].options" in message and "detials" in message
