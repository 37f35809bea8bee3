"""The update passes end to end: which pairs reach the LLM, how many calls, resuming, scopes.

Real embedded backends (MiniLM, local Qdrant, BM25), the real `openai` client, and the loopback
OpenAI-compatible server answering with the project's scripted model: one fact per message
(``"user: <text>"``), update decisions from :class:`ScriptedResponder` or from a rule below.
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("lightmem_openai", reason="lightmem-openai is not installed")
for _module in ("lightmem_huggingface", "lightmem_qdrant", "lightmem_bm25"):
    pytest.importorskip(_module, reason="the embedded default plugins are not installed")

from lightmem_core import LightMemory  # noqa: E402
from lightmem_core.eval.economy import ScriptedResponder, shown_checks  # noqa: E402
from lightmem_core.testing.openai_server import Fault  # noqa: E402

pytestmark = pytest.mark.slow

MOVES = [
    ("2024-01-05T10:00:00", "I live in Lisbon and work as a data engineer."),
    ("2024-02-05T10:00:00", "My dog Biscuit is a border collie."),
    ("2024-03-05T10:00:00", "I moved: I live in Porto now, no longer in Lisbon."),
    ("2024-04-05T10:00:00", "Biscuit my border collie turned three."),
    ("2024-05-05T10:00:00", "I moved again: I live in Madrid now, no longer in Porto."),
]


def supersede_older_city(body: dict) -> str:
    """Extraction as the scripted model; update: a newer memory naming a new home city
    supersedes an older one about where the user lives."""
    schema = body.get("response_format", {}).get("json_schema", {}).get("schema", {})
    if schema.get("title") != "lightmem_update_decisions":
        return ScriptedResponder()(body)
    prompt = "\n".join(m["content"] for m in body["messages"])
    texts, checks = shown_checks(prompt)
    decisions = []
    for old, newer in checks:
        for new in newer:
            if "live in" in texts[old] and "I moved" in texts[new]:
                decisions.append({"id": old, "action": "delete", "new_memory": "", "by": new})
                break
    return json.dumps({"decisions": decisions})


def update_requests(server) -> list:
    return [
        r
        for r in server.chat_requests
        if r.response_format["json_schema"]["schema"]["title"] == "lightmem_update_decisions"
    ]


@pytest.fixture
def config(tmp_path, openai_server):
    openai_server.responder = supersede_older_city
    return {
        "memory_manager": {
            "model_name": "openai",
            "configs": {
                "model": "gpt-4o-mini",
                "api_key": "sk-test-update-pass",
                "openai_base_url": openai_server.base_url,
                "max_retries": 0,
            },
        },
        "update": "offline",
        "memory_dir": str(tmp_path / "mem"),
    }


def add(mem, items, **scope):
    for when, text in items:
        mem.add_memory(
            [{"role": "user", "content": text, "time_stamp": when}],
            force_segment=True,
            force_extract=True,
            **scope,
        )


def active_texts(mem, **scope) -> set[str]:
    return {e.memory for e in mem.get_all(**scope)}


def test_one_call_decides_every_pair_and_a_second_pass_calls_nothing(config, openai_server):
    with LightMemory(config) as mem:
        add(mem, MOVES, user_id="alice")
        mem.construct_update_queue_all_entries()
        changes = mem.offline_update_all_entries(score_threshold=0.3)
        [request] = update_requests(openai_server)
        prompt = request.json["messages"][1]["content"]
        texts, checks = shown_checks(prompt)
        # each memory shown once, the texts quoted; the dog and the moves never share a check
        assert len(set(texts.values())) == len(texts)
        for old, newer in checks:
            assert all(("Biscuit" in texts[old]) == ("Biscuit" in texts[n]) for n in newer)
        superseded = {c.old_memory for c in changes if c.action == "supersede"}
        assert "user: I live in Lisbon and work as a data engineer." in superseded
        assert "user: I moved: I live in Porto now, no longer in Lisbon." in superseded
        assert active_texts(mem) >= {
            "user: I moved again: I live in Madrid now, no longer in Porto.",
            "user: My dog Biscuit is a border collie.",
        }
        lisbon = next(c for c in changes if "Lisbon and work" in c.old_memory)
        assert mem.get(lisbon.entry_id).status == "superseded"
        assert mem.history(lisbon.entry_id)[-1]["replaced_by"] == lisbon.replaced_by
        calls = len(openai_server.chat_requests)
        assert mem.construct_update_queue_all_entries() == 0
        assert mem.offline_update_all_entries(score_threshold=0.3) == []
        assert len(openai_server.chat_requests) == calls


def test_the_update_passes_vector_cache_is_the_memorys_and_freed_on_close(config, tmp_path):
    mem = LightMemory(config)
    add(mem, MOVES, user_id="alice")
    mem.construct_update_queue_all_entries()
    cache = mem._rt.bare_vectors
    assert len(cache) == len(MOVES)  # one bare-text vector per memory compared
    with LightMemory({**config, "memory_dir": str(tmp_path / "other")}) as other:
        assert len(other._rt.bare_vectors) == 0  # not shared between memories
    mem.close()
    assert len(cache) == 0


def test_only_new_entries_bring_their_neighbourhood_back(config, openai_server):
    with LightMemory(config) as mem:
        add(mem, MOVES[:2], user_id="alice")
        mem.construct_update_queue_all_entries()
        mem.offline_update_all_entries(score_threshold=0.3)
        before = len(update_requests(openai_server))
        add(mem, MOVES[2:3], user_id="alice")
        assert mem.construct_update_queue_all_entries() == 1  # only the new entry is visited
        mem.offline_update_all_entries(score_threshold=0.3)
        [request] = update_requests(openai_server)[before:]
        texts, checks = shown_checks(request.json["messages"][1]["content"])
        assert [(texts[o], [texts[n] for n in ns]) for o, ns in checks] == [
            (
                "user: I live in Lisbon and work as a data engineer.",
                ["user: I moved: I live in Porto now, no longer in Lisbon."],
            )
        ]


def test_a_failed_call_leaves_its_checks_queued_and_the_next_pass_resumes(
    config, openai_server, monkeypatch
):
    from lightmem_core.pipeline import update

    with LightMemory(config) as mem:
        add(mem, MOVES, user_id="alice")
        mem.construct_update_queue_all_entries()
        calls = len(openai_server.chat_requests)
        openai_server.queue(Fault.http_error(500))  # the first update call fails
        monkeypatch.setattr(update, "UPDATE_BATCH_TOKENS", 1)  # one check per call
        first = mem.offline_update_all_entries(score_threshold=0.3)
        assert mem.store.update_queue()  # the failed call's checks wait
        assert mem.store.get_meta(update.WATERMARK) in (None, "0")
        second = mem.offline_update_all_entries(score_threshold=0.3)
        assert len(openai_server.chat_requests) - calls >= 3  # one call per check
        assert mem.store.update_queue() == {}
        assert int(mem.store.get_meta(update.WATERMARK)) > 0
        changed = {c.old_memory for c in [*first, *second]}
        assert "user: I live in Lisbon and work as a data engineer." in changed
        assert "user: I moved: I live in Porto now, no longer in Lisbon." in changed


def test_scopes_must_match_exactly(config, openai_server):
    with LightMemory(config) as mem:
        add(mem, MOVES[:1], user_id="alice")
        # newer "I moved" memories in other scopes: unscoped, agent-only, another user,
        # the same user with an agent
        add(mem, MOVES[2:3])
        add(mem, MOVES[2:3], agent_id="helper")
        add(mem, MOVES[2:3], user_id="bob")
        add(mem, MOVES[2:3], user_id="alice", agent_id="helper")
        mem.construct_update_queue_all_entries()
        assert mem.offline_update_all_entries(score_threshold=0.3) == []
        assert update_requests(openai_server) == []
        assert "user: I live in Lisbon and work as a data engineer." in active_texts(
            mem, user_id="alice"
        )
        add(mem, MOVES[2:3], user_id="alice")
        mem.construct_update_queue_all_entries()
        [change] = mem.offline_update_all_entries(score_threshold=0.3)
        assert change.old_memory == "user: I live in Lisbon and work as a data engineer."
        assert mem.get(change.replaced_by).scope.user_id == "alice"
        assert mem.get(change.replaced_by).scope.agent_id is None


def test_online_update_reconciles_a_batch_in_one_call(config, openai_server):
    config["update"] = "online"
    config["online_update_threshold"] = 0.3
    with LightMemory(config) as mem:
        add(mem, MOVES[:2], user_id="alice")
        before = len(update_requests(openai_server))
        mem.add_memory(
            [{"role": "user", "content": text, "time_stamp": when} for when, text in MOVES[2:]],
            force_segment=True,
            force_extract=True,
            user_id="alice",
        )
        assert len(update_requests(openai_server)) - before == 1
        active = active_texts(mem, user_id="alice")
        assert "user: I live in Lisbon and work as a data engineer." not in active
        assert "user: My dog Biscuit is a border collie." in active


def test_one_scope_per_call(config, openai_server):
    with LightMemory(config) as mem:
        for user in ("alice", "bob"):
            add(mem, MOVES[:1], user_id=user)
            add(mem, MOVES[2:3], user_id=user)
        mem.construct_update_queue_all_entries()
        changes = mem.offline_update_all_entries(score_threshold=0.3)
        requests = update_requests(openai_server)
        assert len(requests) == 2  # the two users' checks never share a prompt
        for request in requests:
            texts, checks = shown_checks(request.json["messages"][1]["content"])
            assert len(texts) == 2 and len(checks) == 1
        assert sorted(mem.get(c.entry_id).scope.user_id for c in changes) == ["alice", "bob"]
