"""The llama-cpp manager on the real SmolLM2-135M GGUF: conformance, constrained JSON, extraction.

The model runs in the plugin's worker process, so a native crash fails a test instead of ending
the run. The worker loads the model in a second or two; each test generates at most a few
hundred tokens. A 135M model writes poor facts: these tests check shapes and provenance, never
quality. The one test that loads ``llama_cpp`` into the test process itself is ``isolated``.
"""

from __future__ import annotations

import datetime as dt
import json

import attrs
import pytest
from lightmem_hookspecs import Completion, MemoryManager, Message, Segment
from lightmem_llamacpp.plugin import LlamaCppOptions, build

from lightmem_core.llm.extraction import extract_facts, extraction_schema
from lightmem_core.llm.structured import validate
from lightmem_core.testing.conformance.memory_manager import MemoryManagerConformance

#: One thread: on a busy shared CPU, two threads contend and run many times slower.
OPTIONS = LlamaCppOptions(n_ctx=2048, max_tokens=24, n_threads=1)


@pytest.fixture(scope="module")
def manager(smollm2):
    backend = build(attrs.evolve(OPTIONS, model_path=str(smollm2)))
    yield backend
    backend.close()


class TestLlamaCppConformance(MemoryManagerConformance):
    supports_json_schema = True

    @pytest.fixture
    def backend(self, manager):
        return manager


@pytest.mark.slow
def test_model_loads_lazily_in_a_worker_and_counts_tokens(smollm2):
    import os
    import sys

    backend = build(attrs.evolve(OPTIONS, model_path=str(smollm2)))
    assert not backend.loaded
    result = backend.complete([{"role": "user", "content": "Say hello."}], max_tokens=8)
    assert backend.loaded
    assert backend.worker_pid not in (None, os.getpid())
    assert "llama_cpp" not in sys.modules
    assert isinstance(result, Completion)
    assert 0 < result.completion_tokens <= 8
    assert result.prompt_tokens > 3
    assert result.model == "SmolLM2-135M-Instruct.Q4_1"
    backend.close()
    assert not backend.loaded


@pytest.mark.slow
def test_constrained_completion_is_json_of_the_schema(manager):
    schema = extraction_schema(metadata_generate=True, text_summary=False)
    result = manager.complete(
        [
            {"role": "system", "content": "Answer with JSON only."},
            {"role": "user", "content": "[m1] Alice: I adopted a dog named Rex. List facts."},
        ],
        json_schema=schema,
        max_tokens=120,
    )
    assert isinstance(manager, MemoryManager)
    if result.finish_reason == "stop":
        value = json.loads(result.text)
        assert validate(value, schema) == []
    else:  # cut at max_tokens: still a prefix of schema-shaped JSON
        assert result.finish_reason == "length"
        assert result.text.lstrip().startswith("{")


def test_a_prompt_larger_than_the_context_is_a_clear_error(smollm2):
    backend = build(LlamaCppOptions(n_ctx=64, n_threads=1, model_path=str(smollm2)))
    with pytest.raises(RuntimeError, match=r"n_ctx=64 tokens: raise memory_manager\.configs"):
        backend.complete([{"role": "user", "content": "word " * 200}])
    backend.close()


@pytest.mark.slow
def test_extract_facts_runs_end_to_end(manager):
    t0 = dt.datetime(2023, 5, 20, 2, 21)
    texts = [
        ("user", "I adopted a dog named Rex last Sunday."),
        ("assistant", "Congratulations! What breed is Rex?"),
        ("user", "Rex is a beagle. I also started learning Spanish."),
    ]
    messages = tuple(
        Message(
            id=f"id-{k}",
            role=role,
            content=text,
            original_content=text,
            time_stamp=t0 + dt.timedelta(minutes=k),
            speaker_name="Alice" if role == "user" else "Bot",
        )
        for k, (role, text) in enumerate(texts)
    )
    result = extract_facts(
        manager,
        [Segment(topic_id=3, messages=messages)],
        messages_use="user_only",
        metadata_generate=False,
        text_summary=False,
        extract_threshold=0.0,
        max_attempts=2,
        max_tokens=160,
    )
    assert 1 <= result.attempts <= 2
    user_ids = {"id-0", "id-2"}
    by_id = {m.id: m for m in messages}
    for fact in result.facts:
        assert fact.text
        assert fact.source_message_ids and set(fact.source_message_ids) <= user_ids
        first = by_id[fact.source_message_ids[0]]
        assert fact.time_stamp == first.time_stamp
        assert fact.speaker_name == "Alice"
        assert fact.topic_id == 3
        assert 0.0 <= fact.importance <= 1.0


@pytest.mark.slow
def test_lightmemory_extracts_through_the_local_model(tmp_path, smollm2):
    from lightmem_llamacpp import plugin

    import lightmem_core.builtin as builtin
    from lightmem_core import LightMemory
    from lightmem_core.testing import fresh_host
    from lightmem_core.testing.reference import ReferencePlugin, reference_config

    host = fresh_host(builtin, ReferencePlugin(), plugin)
    configs = {"n_ctx": 2048, "max_tokens": 160, "n_threads": 1, "model_path": str(smollm2)}
    config = reference_config(
        tmp_path / "mem",
        memory_manager={"model_name": "llama-cpp", "configs": configs},
        metadata_generate=False,
        text_summary=False,
        update=None,
    )
    mem = LightMemory(config, host=host)
    try:
        mem.add_memory(
            [
                {
                    "role": "user",
                    "content": "I adopted a beagle named Rex.",
                    "time_stamp": "2023/05/20 (Sat) 02:21",
                },
                {
                    "role": "assistant",
                    "content": "Lovely! How old is Rex?",
                    "time_stamp": "2023/05/20 (Sat) 02:22",
                },
            ],
            force_segment=True,
            force_extract=True,
        )
        usage = mem.get_token_statistics()["total"]
    finally:
        mem.close()
    assert usage["llm_calls"] >= 1
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0


@pytest.mark.isolated(timeout=300)
def test_the_installed_runtime_runs_on_this_cpu_in_process(smollm2):
    """Loads llama_cpp into the (isolated) test process: a build with instructions this CPU
    lacks dies here with SIGILL, reported as this test's failure, and the run goes on."""
    import llama_cpp

    llm = llama_cpp.Llama(str(smollm2), n_ctx=256, n_threads=1, seed=42, verbose=False)
    out = llm.create_completion("Hello", max_tokens=4, temperature=0.0)
    assert out["usage"]["completion_tokens"] >= 1
