"""The original LightMem flow with an LLM: openai manager on a loopback server, offline update.

A real OpenAI-compatible HTTP server (lightmem_core.testing.openai_server) answers as a
well-behaved LLM would: one fact per message it is shown, and "delete" when a newer memory
contradicts an older one. The real `openai` client and the real embedded backends run.
"""

from __future__ import annotations

import json
import re

import pytest

pytest.importorskip("lightmem_openai", reason="lightmem-openai is not installed")
for _module in ("lightmem_huggingface", "lightmem_qdrant", "lightmem_sqlite_index"):
    pytest.importorskip(_module, reason="the embedded default plugins are not installed")

from lightmem_core import LightMemory  # noqa: E402

LINE = re.compile(r"^(\d+) (.*?): (.*)$")
MEMORY = re.compile(r'^(\d+) \S+ "(.*)"$')
CHECK = re.compile(r"^(\d+) <- ([\d, ]+)$")
SESSIONS = [
    [
        {
            "role": "user",
            "content": "I live in Lisbon and work as a data engineer.",
            "time_stamp": "2024-03-02T09:15:00",
        },
        {"role": "assistant", "content": "Lisbon is lovely.", "time_stamp": "2024-03-02T09:16:00"},
        {
            "role": "user",
            "content": "My dog is a border collie named Biscuit.",
            "time_stamp": "2024-03-02T09:17:00",
        },
    ],
    [
        {
            "role": "user",
            "content": "I moved: I live in Porto now, no longer in Lisbon.",
            "time_stamp": "2024-04-10T18:00:00",
        },
        {"role": "assistant", "content": "Porto is great.", "time_stamp": "2024-04-10T18:01:00"},
    ],
]


def moved_decisions(prompt: str) -> list[dict]:
    """Supersede a memory about Lisbon by a newer one about Porto, in any check shown."""
    texts = {int(m.group(1)): m.group(2) for m in map(MEMORY.match, prompt.splitlines()) if m}
    decisions = []
    for m in filter(None, map(CHECK.match, prompt.splitlines())):
        old = int(m.group(1))
        for new in (int(x) for x in m.group(2).split(",")):
            if "Lisbon" in texts[old] and "Porto" not in texts[old] and "Porto" in texts[new]:
                decisions.append({"id": old, "action": "delete", "new_memory": "", "by": new})
                break
    return decisions


def fake_llm(body: dict) -> str:
    """Answer extraction and update requests the way a competent model would."""
    schema = body.get("response_format", {}).get("json_schema", {}).get("schema", {})
    prompt = "\n".join(m["content"] for m in body["messages"] if isinstance(m["content"], str))
    title = schema.get("title", "")
    if title == "lightmem_update_decisions":
        return json.dumps({"decisions": moved_decisions(prompt)})
    facts, topics = [], []
    for line in prompt.splitlines():
        m = LINE.match(line)
        if m:
            text = json.loads(m.group(3))  # message texts are JSON-quoted
            facts.append(
                {
                    "text": text,
                    "sources": [int(m.group(1))],
                    "importance": 0.9,
                    "keywords": text.lower().split()[:3],
                    "entities": [],
                    "category": "personal",
                }
            )
    for topic in sorted(set(re.findall(r"\b(t\d+)\b", prompt))):
        topics.append({"topic": topic, "summary": "the user talks about their life"})
    return json.dumps({"topics": topics, "facts": facts})


@pytest.fixture
def config(tmp_path, openai_server):
    openai_server.responder = fake_llm
    return {
        "pre_compress": False,
        "topic_segment": True,
        "precomp_topic_shared": False,
        "topic_segmenter": {"model_name": "embedding"},
        "messages_use": "user_only",
        "metadata_generate": True,
        "text_summary": True,
        "memory_manager": {
            "model_name": "openai",
            "configs": {
                "model": "gpt-4o-mini",
                "api_key": "sk-never-print-me",
                "max_tokens": 16000,
                "openai_base_url": openai_server.base_url,
            },
        },
        "extract_threshold": 0.1,
        "index_strategy": "embedding",
        "text_embedder": {"model_name": "huggingface", "configs": {"embedding_dims": 384}},
        "retrieve_strategy": "embedding",
        "embedding_retriever": {
            "model_name": "qdrant",
            "configs": {
                "collection_name": "my_long_term_chat",
                "embedding_model_dims": 384,
                "path": str(tmp_path / "qdrant"),
            },
        },
        "update": "offline",
        "memory_dir": str(tmp_path / "mem"),
    }


@pytest.mark.slow
def test_original_flow_with_offline_update(config, openai_server, caplog):
    caplog.set_level("DEBUG")
    mem = LightMemory.from_config(config)
    for session in SESSIONS:
        mem.add_memory(session, force_segment=True, force_extract=True)
    chat = openai_server.chat_requests
    assert len(chat) == 2  # ONE extraction call per flushed batch
    assert "Lisbon is lovely" not in json.dumps(chat[0].json)  # messages_use: user_only
    entries = {e.memory: e for e in mem.get_all()}
    assert set(entries) == {
        "I live in Lisbon and work as a data engineer.",
        "My dog is a border collie named Biscuit.",
        "I moved: I live in Porto now, no longer in Lisbon.",
    }
    lisbon = entries["I live in Lisbon and work as a data engineer."]
    porto = entries["I moved: I live in Porto now, no longer in Lisbon."]
    assert lisbon.time_stamp.isoformat() == "2024-03-02T09:15:00"
    assert porto.time_stamp.isoformat() == "2024-04-10T18:00:00"
    assert lisbon.topic_summary and lisbon.keywords and lisbon.category == "personal"
    [source] = lisbon.source_message_ids
    assert mem.store.messages_by_id([source])[source].content == SESSIONS[0][0]["content"]

    queued = mem.construct_update_queue_all_entries()
    assert queued == 2  # the two newer entries; the oldest has nothing older to compare with
    changes = mem.offline_update_all_entries(score_threshold=0.3)
    assert [(c.entry_id, c.action, c.replaced_by) for c in changes] == [
        (lisbon.id, "supersede", porto.id)
    ]
    assert mem.get(lisbon.id).status == "superseded"
    [last] = mem.history(lisbon.id)[-1:]
    assert last["action"] == "supersede" and last["replaced_by"] == porto.id
    retrieved = mem.retrieve("Where do I live?", limit=5)
    assert not any("Lisbon and work" in r for r in retrieved)
    assert retrieved[0].endswith("I live in Porto now, no longer in Lisbon.")

    stats = mem.get_token_statistics()
    assert stats["by_operation"]["extract"]["llm_calls"] == 2
    assert stats["by_operation"]["update"]["llm_calls"] >= 1
    assert stats["total"]["prompt_tokens"] > 0 and stats["total"]["completion_tokens"] > 0
    # a second pass visits nothing new: no LLM call
    before = len(openai_server.chat_requests)
    assert mem.construct_update_queue_all_entries() == 0
    assert mem.offline_update_all_entries(score_threshold=0.3) == []
    assert len(openai_server.chat_requests) == before
    mem.close()
    assert "sk-never-print-me" not in caplog.text
    assert all(r.authorization == "Bearer sk-never-print-me" for r in openai_server.chat_requests)


@pytest.mark.slow
def test_failed_extraction_stays_pending_and_is_retried_once(config, openai_server):
    from lightmem_core.testing.openai_server import Fault

    config["memory_manager"]["configs"]["max_retries"] = 0
    mem = LightMemory.from_config(config)
    openai_server.queue(Fault.http_error(500))
    result = mem.add_memory(SESSIONS[0], force_segment=True, force_extract=True)
    assert result.batches_pending == 1 and mem.get_all() == []
    assert mem.store.stats()["batches"] == {"failed": 1}
    retried = mem.retry()
    assert retried.batches_pending == 0
    assert len(mem.get_all()) == 2
    mem.retry()
    assert len(mem.get_all()) == 2  # never extracted twice
    mem.close()


@pytest.mark.slow
def test_online_update_supersedes_right_after_extraction(config, openai_server):
    config["update"] = "online"
    config["online_update_threshold"] = 0.3
    mem = LightMemory.from_config(config)
    for session in SESSIONS:
        mem.add_memory(session, force_segment=True, force_extract=True)
    active = {e.memory for e in mem.get_all()}
    titles = [
        r.response_format["json_schema"]["schema"]["title"] for r in openai_server.chat_requests
    ]
    assert titles == ["lightmem_extraction", "lightmem_extraction", "lightmem_update_decisions"]
    assert "I live in Lisbon and work as a data engineer." not in active
    assert "I moved: I live in Porto now, no longer in Lisbon." in active
    mem.close()


@pytest.mark.slow
def test_thirty_percent_of_calls_failing_everything_is_extracted(config, openai_server):
    config["memory_manager"]["configs"].update(max_retries=2)
    openai_server.fail_rate(0.3, seed=7)
    turns = [
        {
            "role": "user",
            "content": f"Fact {i}: my favourite number is {i}.",
            "time_stamp": f"2024-01-{i + 1:02d}T10:00:00",
        }
        for i in range(8)
    ]
    mem = LightMemory.from_config(config)
    for turn in turns:
        mem.add_memory([turn], force_segment=True, force_extract=True)
    for _ in range(5):
        if mem.retry().batches_pending == 0:
            break
    assert sorted(e.memory for e in mem.get_all()) == sorted(t["content"] for t in turns)
    # bounded: at most 1 + max_retries requests per attempt, and few attempts
    assert len(openai_server.chat_requests) <= 8 * 3 * 2
    mem.close()


@pytest.mark.slow
def test_crash_between_extraction_and_storage_then_restart(config, openai_server, monkeypatch):
    mem = LightMemory.from_config(config)

    def crash(batch_id, entries, **kwargs):
        raise KeyboardInterrupt("simulated crash after the LLM answered")

    monkeypatch.setattr(mem.store, "complete_batch", crash)
    with pytest.raises(KeyboardInterrupt):
        mem.add_memory(SESSIONS[0], force_segment=True, force_extract=True)
    mem.close()
    monkeypatch.undo()
    with LightMemory.from_config(config) as reopened:
        assert reopened.get_all() == []
        reopened.retry()
        reopened.retry()
        reopened.add_memory(SESSIONS[0], force_segment=True, force_extract=True)
        assert sorted(e.memory for e in reopened.get_all()) == [
            "I live in Lisbon and work as a data engineer.",
            "My dog is a border collie named Biscuit.",
        ]


@pytest.mark.slow
def test_an_extracted_fact_is_found_by_the_words_of_the_turn_it_answered(config, openai_server):
    """The lexical index sees the turn before a fact's earliest source, as for raw turns."""
    config["retrieve_strategy"] = "context"
    config["context_retriever"] = {"model_name": "sqlite-bm25"}
    config["index_strategy"] = "hybrid"
    mem = LightMemory.from_config(config)
    turns = [
        {
            "role": "assistant",
            "content": "What did you call the puppy from the Alfama shelter?",
            "time_stamp": "2024-03-02T09:15:00",
        },
        {
            "role": "user",
            "content": "Biscuit, after his colour!",
            "time_stamp": "2024-03-02T09:16:00",
        },
        {"role": "user", "content": "I also bought a kayak.", "time_stamp": "2024-03-04T09:16:00"},
    ]
    mem.add_memory(turns, force_segment=True, force_extract=True)
    entries = {e.memory: e for e in mem.get_all()}
    biscuit = entries["Biscuit, after his colour!"]
    assert biscuit.metadata["context"].endswith(
        "What did you call the puppy from the Alfama shelter?"
    )
    assert "context" not in entries["I also bought a kayak."].metadata  # two days later
    hits = mem.search("puppy from the shelter", limit=1)
    assert [h.entry.memory for h in hits] == ["Biscuit, after his colour!"]
    mem.close()
