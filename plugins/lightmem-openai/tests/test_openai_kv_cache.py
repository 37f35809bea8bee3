"""``kv_cache: true`` with an OpenAI-compatible manager: a byte-identical static prefix, counted.

The loopback server plays a prefix-caching server (vLLM, SGLang, OpenAI): it reports in
``usage.prompt_tokens_details.cached_tokens`` the longest prefix, in its tokens, a request
shares with an earlier one. The memory's reference backends (hash embedder, exact vector
index, keyword index) run for real; the manager is the real ``openai`` client.
"""

from __future__ import annotations

import json
import re

import lightmem_openai.plugin as openai_plugin
import pytest

import lightmem_core.builtin as builtin
from lightmem_core import LightMemory
from lightmem_core.errors import ConfigError, NotImplementedYetError
from lightmem_core.llm.extraction import _output_format
from lightmem_core.llm.prompts import Prompts
from lightmem_core.testing import fresh_host
from lightmem_core.testing.reference import ReferencePlugin, reference_config

LINE = re.compile(r"^(\d+) (.*?): (.*)$")

T1, T2, T3 = "2024-03-02T09:15", "2024-04-10T18:00", "2024-05-01T10:00"
SESSIONS = [
    [
        {"role": "user", "content": "My dog is called Biscuit.", "time_stamp": "2024-03-02T09:15"},
        {"role": "user", "content": "I work as a data engineer.", "time_stamp": "2024-03-02T09:16"},
    ],
    [
        {"role": "user", "content": "I moved to Porto last week.", "time_stamp": T2},
    ],
    [
        {"role": "user", "content": "My sister Ana plays the cello.", "time_stamp": T3},
        {"role": "user", "content": "She lives in Braga.", "time_stamp": "2024-05-01T10:01"},
        {"role": "user", "content": "We meet every Sunday.", "time_stamp": "2024-05-01T10:02"},
    ],
]


def one_fact_per_message(body: dict) -> str:
    prompt = "\n".join(m["content"] for m in body["messages"])
    facts = [
        {"text": json.loads(m.group(3)), "sources": [int(m.group(1))], "importance": 0.9}
        for m in map(LINE.match, prompt.splitlines())
        if m
    ]
    return json.dumps({"facts": facts})


def memory(config: dict) -> LightMemory:
    return LightMemory(config, host=fresh_host(builtin, ReferencePlugin(), openai_plugin))


def config(tmp_path, server, **overrides):
    return reference_config(
        tmp_path / "mem",
        memory_manager={
            "model_name": "openai",
            "configs": {"model": "m", "openai_base_url": server.base_url, "max_retries": 0},
        },
        metadata_generate=False,
        text_summary=False,
        update="offline",
        **overrides,
    )


def ingest(mem: LightMemory) -> None:
    for session in SESSIONS:
        mem.add_memory(session, force_segment=True, force_extract=True)


def static_tokens(server, body: dict, static_text: str) -> int:
    """The prompt tokens, as the server counts them, of the system message plus the start of
    the user message up to its static end."""
    head = {**body, "messages": [body["messages"][0], {"role": "user", "content": static_text}]}
    tokens = server.prompt_token_sequence(head)
    return len(tokens) - 2  # minus the format pseudo-token and the closing token


def test_static_prefix_is_byte_identical_and_the_servers_cached_tokens_are_counted(
    tmp_path, openai_server
):
    openai_server.responder = one_fact_per_message
    with memory(config(tmp_path, openai_server, kv_cache=True)) as mem:
        ingest(mem)
        stats = mem.stats()["kv_cache"]
    bodies = [r.json for r in openai_server.chat_requests]
    assert len(bodies) == 3
    output_format = _output_format(False, False, False)
    static = Prompts().static_prefix("extraction", output_format=output_format)
    for body in bodies:
        assert body["messages"][0]["content"] == Prompts().system
        assert body["messages"][1]["content"].startswith(static)
    # one schema for every extraction call (no per-call list of message ids)
    formats = {json.dumps(b["response_format"], sort_keys=True) for b in bodies}
    assert len(formats) == 1
    assert "enum" not in next(iter(formats))
    # the server served at least the whole static part from its cache after the first call
    expected = static_tokens(openai_server, bodies[0], static)
    cached = openai_server.cached_tokens
    assert cached[0] == 0
    assert all(n >= expected for n in cached[1:])
    assert stats["enabled"] is True
    assert stats["llm_calls"] == 3
    assert stats["hits"] == 2
    assert stats["cached_prompt_tokens"] == sum(cached)
    assert stats["prompt_tokens"] > stats["cached_prompt_tokens"]


def test_without_kv_cache_the_schema_names_each_calls_messages(tmp_path, openai_server):
    openai_server.responder = one_fact_per_message
    with memory(config(tmp_path, openai_server)) as mem:
        ingest(mem)
        stats = mem.stats()["kv_cache"]
    formats = [json.dumps(r.json["response_format"]) for r in openai_server.chat_requests]
    assert len(set(formats)) == 3  # the stricter per-call schema: no common prefix there
    assert openai_server.cached_tokens == [0, 0, 0]
    assert stats["enabled"] is False and stats["hits"] == 0


def test_online_mode_is_refused_and_says_whose_job_it_is(tmp_path, openai_server):
    with pytest.raises(NotImplementedYetError, match=r"\$\.kv_cache: \"online\".*application"):
        memory(config(tmp_path, openai_server, kv_cache="online"))


def test_kv_cache_needs_a_memory_manager(tmp_path):
    with pytest.raises(ConfigError, match=r"\$\.kv_cache: .*memory_manager"):
        memory(reference_config(tmp_path / "mem", kv_cache=True))


def test_an_override_that_puts_the_format_after_the_data_is_refused_with_kv_cache(
    tmp_path, openai_server
):
    late = "Facts in:\n$conversation\n$output_format\n"
    with pytest.raises(ConfigError, match=r"\$\.prompts\.extraction: with kv_cache on"):
        memory(config(tmp_path, openai_server, kv_cache=True, prompts={"extraction": late}))
    # without kv_cache the same override is fine
    memory(config(tmp_path, openai_server, prompts={"extraction": late})).close()
