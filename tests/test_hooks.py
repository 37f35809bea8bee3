"""One test per hook (named after it), plus the meta-tests that keep docs and tests complete."""

from __future__ import annotations

import inspect
import re
import warnings
from pathlib import Path

import attrs
import pytest
from lightmem_hookspecs import hookimpl, specs

from lightmem_core import LightMemory
from lightmem_core.errors import ConfigError
from lightmem_core.testing.reference import reference_config

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
    with warnings.catch_warnings():  # deprecated: the warning is tested in test_registrar.py
        warnings.simplefilter("ignore", DeprecationWarning)
        info = ref_host.register(P(), "probe-plugin")
    reg = ref_host.registry.get(kind, "PROBE")
    assert reg is not None and reg.options is Opts and reg.plugin == "probe-plugin"
    assert info.backends == {kind: ["probe"]}
    assert len(info.deprecated) == 1 and f"registrar.{kind}(" in info.deprecated[0]


def test_lightmem_register_backends(ref_host, make_memory):
    @attrs.frozen
    class Opts:
        level: int = 1

    class P:
        @hookimpl
        def lightmem_register_backends(self, registrar):
            registrar.reranker("Probe", lambda o, c: Reverse(), options=Opts, description="d")
            registrar.add("pre_compressor", "probe", lambda o, c: None)

    info = ref_host.register(P(), "probe-plugin")
    reg = ref_host.registry.get("reranker", "PROBE")
    assert reg is not None and reg.options is Opts and reg.plugin == "probe-plugin"
    assert reg.description == "d" and info.deprecated == []
    assert info.backends == {"reranker": ["Probe"], "pre_compressor": ["probe"]}
    mem = make_memory(reranker={"model_name": "probe", "configs": {"level": 2}})
    mem.add_memory(
        [*DOG, {"role": "user", "content": "I like green tea"}],
        force_segment=True,
        force_extract=True,
    )
    hits = mem.search("dog Biscuit", limit=5)
    assert hits[-1].entry.memory == "My dog is called Biscuit"


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


def test_lightmem_register_record_stores(ref_host, tmp_path):
    _kind_register_test(ref_host, "lightmem_register_record_stores", "record_store")
    from lightmem_core.store import SQLiteRecordStore

    built: list[str] = []

    class Store(SQLiteRecordStore):
        """The SQLite store under another name: selected by configuration, built first."""

    class P:
        @hookimpl
        def lightmem_register_record_stores(self, register):
            def build(options, context):
                built.append(context.settings["db_path"])
                return Store(context.settings["db_path"])

            register("other-sqlite", build)

    ref_host.register(P(), "other-store")
    config = reference_config(tmp_path, record_store={"model_name": "other-sqlite"})
    with LightMemory(config, host=ref_host) as mem:
        assert isinstance(mem.store, Store)
        mem.add_memory([*DOG], force_segment=True, force_extract=True)
        assert mem.store.count_entries() == 1
    assert built == [str(tmp_path / "history.db")]


def test_lightmem_register_rerankers(ref_host, make_memory):
    _kind_register_test(ref_host, "lightmem_register_rerankers", "reranker")
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


class Reverse:
    def rerank(self, query, hits, *, limit):
        return list(reversed(hits))[:limit]


@pytest.fixture(autouse=True)
def _reverse_reranker(ref_host):
    class P:
        @hookimpl
        def lightmem_register_backends(self, registrar):
            registrar.reranker("reverse", lambda o, c: Reverse())

    ref_host.register(P(), "reverse")


@pytest.fixture
def recorded(ref_host, make_memory):
    recorder = Recorder()
    ref_host.register(recorder, "recorder")
    mem = make_memory(hooks=["recorder"])
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


class Redactor:
    """Redacts digits in segments and drops messages that say "forget"."""

    @hookimpl
    def lightmem_segments_ready(self, segments):
        kept = []
        for segment in segments:
            messages = tuple(
                attrs.evolve(m, content=re.sub(r"\d", "#", m.content))
                for m in segment.messages
                if "forget" not in m.content
            )
            if messages:
                kept.append(attrs.evolve(segment, messages=messages))
        segments[:] = kept


def test_lightmem_segments_ready_edits_reach_the_store(ref_host, make_memory):
    ref_host.register(Redactor(), "redactor")
    mem = make_memory(hooks=["redactor"])
    mem.add(
        [
            {"role": "user", "content": "my pin is 1234"},
            {"role": "user", "content": "forget this: I hate Mondays"},
        ]
    )
    assert [e.memory for e in mem.get_all()] == ["my pin is ####"]
    states = mem.stats()["messages"]
    assert states == {"extracted": 1, "dropped": 1}  # nothing left in the sensory buffer
    assert [h.entry.memory for h in mem.search("pin", limit=3)] == ["my pin is ####"]
    assert mem.search("Mondays", limit=3, strategy="context") == []


def test_lightmem_segments_ready_cannot_add_messages(ref_host, make_memory):
    from lightmem_core import HookError

    class Adder:
        @hookimpl
        def lightmem_segments_ready(self, segments):
            extra = attrs.evolve(segments[0].messages[0], id="invented", content="invented")
            segments[0] = attrs.evolve(segments[0], messages=(*segments[0].messages, extra))

    ref_host.register(Adder(), "adder")
    mem = make_memory(hooks=["adder"])
    with pytest.raises(HookError, match="invented"):
        mem.add(DOG)
    assert mem.stats()["messages"] == {"sensory": 1}  # the message is kept, not lost


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
            seen.append((operation.name, attrs.asdict(operation.usage)))
            return result

    ref_host.register(Tracer(), "tracer")
    # vector_batch_texts=1: the add embeds its entries itself (not the next search)
    mem = make_memory(hooks=["tracer"], reranker={"model_name": "reverse"}, vector_batch_texts=1)
    mem.add_memory(DOG, force_segment=True, force_extract=True)
    mem.search("dog", limit=1)
    names = [name for name, _ in seen]
    for name in ("add_memory", "extract", "embed", "index", "retrieve", "search", "rerank"):
        assert name in names, f"operation {name!r} was never run through the hook: {names}"
    usage = dict(seen)
    # an outer operation totals the work nested inside it
    assert usage["add_memory"]["embedder_calls"] >= 1
    assert usage["retrieve"]["embedded_texts"] == 1
    stats = mem.get_token_statistics()
    assert stats["by_operation"]["add_memory"]["embedder_calls"] >= 1
    assert stats["by_operation"]["retrieve"]["embedded_texts"] == 1


def test_every_operation_name_is_emitted(ref_host, make_memory, llm):
    """Every name the contract lists reaches the wrapper hook in a run that does everything."""
    from lightmem_hookspecs import OPERATION_NAMES

    seen = set()

    class Tracer:
        @hookimpl(wrapper=True)
        def lightmem_run_operation(self, operation):
            seen.add(operation.name)
            return (yield)

    class Upper:
        def compress(self, texts):
            return [t.upper() for t in texts]

    class Plugin:
        @hookimpl
        def lightmem_register_backends(self, registrar):
            registrar.pre_compressor("upper", lambda o, c: Upper())

    from lightmem_core.eval.economy import scripted_responder

    llm.responder = scripted_responder
    ref_host.register(Tracer(), "tracer")
    ref_host.register(Plugin(), "upper-plugin")
    mem = make_memory(
        hooks=["tracer"],
        reranker={"model_name": "reverse"},
        pre_compress=True,
        pre_compressor={"model_name": "upper"},
        topic_segment=True,
        memory_manager={"model_name": "scripted"},
    )
    mem.add_memory(
        [*DOG, {"role": "user", "content": "I moved to Berlin"}],
        force_segment=True,
        force_extract=True,
    )
    mem.construct_update_queue_all_entries()
    mem.offline_update_all_entries(0.1)
    mem.search("dog", limit=2)
    assert set(OPERATION_NAMES) <= seen, sorted(set(OPERATION_NAMES) - seen)


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


def test_pluggy_calls_the_selected_plugins_in_the_configured_order(ref_host, make_memory):
    calls = []

    def recorder(name):
        class Recorder:
            @hookimpl
            def lightmem_query_prepared(self, query, context):
                calls.append((name, context.plugin, context.options.get("n")))

            @hookimpl(wrapper=True)
            def lightmem_run_operation(self, operation):
                calls.append((name, "enter", operation.name))
                return (yield)

        return Recorder()

    for name in ("first", "second", "third"):
        ref_host.register(recorder(name), name)
    hooks = [{"plugin": "second", "options": {"n": 2}}, "first"]
    mem = make_memory(hooks=hooks)
    import pluggy

    assert isinstance(mem.hooks.pm, pluggy.PluginManager)
    # pluggy calls last-registered first: its own order is the configured one
    impls = mem.hooks.pm.hook.lightmem_query_prepared.get_hookimpls()
    assert [i.plugin_name for i in reversed(impls)] == ["second", "first"]
    mem.search("dog", limit=1)
    assert [c for c in calls if c[1] != "enter"] == [
        ("second", "second", 2),
        ("first", "first", None),
    ]
    entered = [c[0] for c in calls if c[1:] == ("enter", "retrieve")]
    assert entered == ["second", "first"], "the first configured wrapper is outermost"


def test_a_hook_plugins_options_class_validates_its_options(ref_host, make_memory):
    def non_negative(_instance, attribute, value):
        if value < 0:
            raise ValueError(f"{attribute.name}: must be >= 0, got {value}")

    @attrs.frozen
    class Options:
        level: int = attrs.field(default=1, validator=non_negative)

    seen = []

    class Plugin:
        LIGHTMEM_HOOK_OPTIONS = Options

        @hookimpl
        def lightmem_query_prepared(self, query, context):
            seen.append(dict(context.options))

    ref_host.register(Plugin(), "typed")
    make_memory(hooks=["typed"]).search("dog", limit=1)
    assert seen == [{"level": 1}], "defaults filled in"
    with pytest.raises(ConfigError, match=r"\$\.hooks\[0\]\.options\.level"):
        make_memory(hooks=[{"plugin": "typed", "options": {"level": -1}}])
    with pytest.raises(ConfigError, match=r"\$\.hooks\[0\]\.options: unknown key\(s\) levle"):
        make_memory(hooks=[{"plugin": "typed", "options": {"levle": 1}}])
