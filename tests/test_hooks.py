"""One test per hook (named after it), plus the meta-tests that keep docs and tests complete."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import attrs
import pytest
from lightmem_hookspecs import hookimpl, specs

ROOT = Path(__file__).resolve().parents[1]
HOOKS = sorted(n for n in dir(specs) if n.startswith("lightmem_"))
DOG = [{"role": "user", "content": "My dog is called Biscuit", "time_stamp": "2024-03-02T09:15"}]


def _kind_register_test(ref_host, hook_name, kind):
    @attrs.frozen
    class Opts:
        level: int = 1

    class P:
        pass

    def impl(register):
        register("probe", lambda o, c: None, options=Opts, description="probe backend")

    setattr(P, hook_name, staticmethod(hookimpl(impl)))
    info = ref_host.register(P(), "probe-plugin")
    reg = ref_host.registry.get(kind, "PROBE")
    assert reg is not None and reg.options is Opts and reg.plugin == "probe-plugin"
    assert info.backends == {kind: ["probe"]}


def test_lightmem_register_pre_compressors(ref_host):
    _kind_register_test(ref_host, "lightmem_register_pre_compressors", "pre_compressor")


def test_lightmem_register_topic_segmenters(ref_host):
    _kind_register_test(ref_host, "lightmem_register_topic_segmenters", "topic_segmenter")
    assert ref_host.registry.get("topic_segmenter", "embedding") is not None


def test_lightmem_register_memory_managers(ref_host):
    _kind_register_test(ref_host, "lightmem_register_memory_managers", "memory_manager")


def test_lightmem_register_text_embedders(ref_host):
    _kind_register_test(ref_host, "lightmem_register_text_embedders", "text_embedder")


def test_lightmem_register_multimodal_embedders(ref_host):
    _kind_register_test(ref_host, "lightmem_register_multimodal_embedders", "multimodal_embedder")


def test_lightmem_register_embedding_retrievers(ref_host):
    _kind_register_test(ref_host, "lightmem_register_embedding_retrievers", "embedding_retriever")


def test_lightmem_register_context_retrievers(ref_host):
    _kind_register_test(ref_host, "lightmem_register_context_retrievers", "context_retriever")


def test_lightmem_register_graph_memories(ref_host):
    _kind_register_test(ref_host, "lightmem_register_graph_memories", "graph_memory")


def test_lightmem_register_rerankers(ref_host, make_memory):
    _kind_register_test(ref_host, "lightmem_register_rerankers", "reranker")

    class Reverse:
        def rerank(self, query, hits, *, limit):
            return list(reversed(hits))[:limit]

    class P:
        @hookimpl
        def lightmem_register_rerankers(self, register):
            register("reverse", lambda o, c: Reverse())

    ref_host.register(P(), "reverse")
    mem = make_memory(reranker={"model_name": "reverse"})
    mem.add_memory(
        [*DOG, {"role": "user", "content": "I like green tea"}],
        force_segment=True,
        force_extract=True,
    )
    hits = mem.search("dog Biscuit", limit=5)
    assert hits[-1].entry.memory == "My dog is called Biscuit"


class Recorder:
    def __init__(self):
        self.calls = []

    @hookimpl
    def lightmem_messages_normalized(self, messages):
        self.calls.append(("messages_normalized", [m.content for m in messages]))
        messages[:] = [m for m in messages if "secret" not in m.content]

    @hookimpl
    def lightmem_segments_ready(self, segments):
        self.calls.append(("segments_ready", len(segments)))

    @hookimpl
    def lightmem_batch_extracted(self, segments, entries):
        self.calls.append(("batch_extracted", len(entries)))
        entries[:] = [attrs.evolve(e, metadata={**e.metadata, "seen": True}) for e in entries]

    @hookimpl
    def lightmem_entries_stored(self, entries):
        self.calls.append(("entries_stored", [e.metadata.get("seen") for e in entries]))

    @hookimpl
    def lightmem_entries_changed(self, changes):
        self.calls.append(("entries_changed", [(c.action, c.new_memory) for c in changes]))

    @hookimpl
    def lightmem_query_prepared(self, query):
        self.calls.append(("query_prepared", query.query))
        query.limit = 1

    @hookimpl
    def lightmem_results_ready(self, query, hits):
        self.calls.append(("results_ready", len(hits)))


@pytest.fixture
def recorded(ref_host, make_memory):
    recorder = Recorder()
    ref_host.register(recorder, "recorder")
    mem = make_memory()
    mem.add_memory(
        [*DOG, {"role": "user", "content": "my secret pin is 1234"}],
        force_segment=True,
        force_extract=True,
    )
    return recorder, mem


def test_lightmem_messages_normalized(recorded):
    recorder, mem = recorded
    assert ("messages_normalized", ["My dog is called Biscuit", "my secret pin is 1234"]) in (
        recorder.calls
    )
    assert [e.memory for e in mem.get_all()] == ["My dog is called Biscuit"]


def test_lightmem_segments_ready(recorded):
    assert ("segments_ready", 1) in recorded[0].calls


def test_lightmem_batch_extracted(recorded):
    recorder, mem = recorded
    assert ("batch_extracted", 1) in recorder.calls
    assert mem.get_all()[0].metadata["seen"] is True


def test_lightmem_entries_stored(recorded):
    assert ("entries_stored", [True]) in recorded[0].calls


def test_lightmem_entries_changed(recorded):
    recorder, mem = recorded
    entry = mem.get_all()[0]
    mem.update(entry.id, "My dog is called Biscuit and he is three")
    assert ("entries_changed", [("update", "My dog is called Biscuit and he is three")]) in (
        recorder.calls
    )


def test_lightmem_query_prepared(recorded):
    recorder, mem = recorded
    mem.add_memory(
        [{"role": "user", "content": "my dog likes the river"}],
        force_segment=True,
        force_extract=True,
    )
    assert len(mem.search("dog", limit=5)) == 1  # the hook lowered the limit
    assert ("query_prepared", "dog") in recorder.calls


def test_lightmem_results_ready(recorded):
    recorder, mem = recorded
    mem.search("dog", limit=3)
    assert ("results_ready", 1) in recorder.calls


def test_lightmem_run_operation(ref_host, make_memory):
    seen = []

    class Tracer:
        @hookimpl(wrapper=True)
        def lightmem_run_operation(self, operation):
            result = yield
            seen.append(
                (operation.name, operation.usage.embedder_calls, operation.usage.embedded_texts)
            )
            return result

    ref_host.register(Tracer(), "tracer")
    mem = make_memory()
    mem.add_memory(DOG, force_segment=True, force_extract=True)
    mem.search("dog", limit=1)
    assert ("embed", 1, 1) in seen
    assert any(name == "retrieve" for name, *_ in seen)
    stats = mem.get_token_statistics()
    assert stats["by_operation"]["add_memory"]["embedder_calls"] >= 1
    assert stats["by_operation"]["retrieve"]["embedded_texts"] == 1


def test_every_hook_has_a_test_named_after_it():
    names = set()
    for path in list((ROOT / "tests").glob("test_*.py")):
        names |= set(re.findall(r"def (test_lightmem_\w+)", path.read_text()))
    missing = [h for h in HOOKS if f"test_{h}" not in names]
    assert not missing, f"hooks without a test named after them: {missing}"


def test_every_hook_is_documented_with_its_exact_signature():
    doc = (ROOT / "docs" / "plugins" / "hooks.md").read_text()
    for hook in HOOKS:
        func = getattr(specs, hook)
        signature = f"{hook}{inspect.signature(func)}".replace("'", "")
        assert f"## {hook}" in doc, f"docs/plugins/hooks.md has no section for {hook}"
        assert signature in doc, f"the docs do not show the exact signature: {signature}"


def test_every_hook_has_a_contract_docstring():
    for hook in HOOKS:
        doc = inspect.getdoc(getattr(specs, hook)) or ""
        assert len(doc) > 40 and ":param" in doc, hook
