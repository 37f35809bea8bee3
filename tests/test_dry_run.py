"""add_memory(dry_run=True) and `lightmem add --dry-run`: the cost of an ingestion, unspent.

The testing kit's scripted memory manager answers as the scripted model and books prompt tokens
as the LLM layer counts them, so the estimate is checked against what ingestion then spends.
"""

from __future__ import annotations

import json

import pytest

from lightmem_core import LightMemory

pytestmark = pytest.mark.slow

WORDS = "we talked about the garden the dog the trip to Porto and the new job at the bakery"


def sessions(count: int = 6, turns: int = 12) -> list[list[dict]]:
    out = []
    for s in range(count):
        out.append(
            [
                {
                    "role": "user",
                    "content": f"session {s} turn {t}: {WORDS} ({s * turns + t})",
                    "time_stamp": f"2024-0{1 + s % 9}-0{1 + t % 9}T10:00:00",
                    "speaker_name": "Alice" if t % 2 else "Bob",
                }
                for t in range(turns)
            ]
        )
    return out


@pytest.fixture
def config(scripted_config):
    return {
        **scripted_config,
        "short_term_buffer_tokens": 300,
    }


def test_the_estimate_spends_nothing_and_matches_what_ingestion_spends(config, llm, ref_host):
    with LightMemory(config, host=ref_host) as mem:
        plan = mem.plan()
        for session in sessions():
            estimate = plan.add_memory(session, _scope(), force_segment=True, force_extract=False)
        assert llm.chat_requests == []
        assert mem.store.journal() == [] and mem.get_all() == []
        assert mem.get_token_statistics()["total"]["llm_calls"] == 0
        assert estimate.messages_new == 72 and estimate.batches >= 2
        assert estimate.token_counting == "cl100k"

        for session in sessions():
            mem.add_memory(session, force_segment=True)
        spent = mem.get_token_statistics()["by_operation"]["extract"]
        assert spent["llm_calls"] == estimate.llm_calls
        assert spent["prompt_tokens"] == estimate.prompt_tokens  # one rendering, one count
        # what is still buffered is planned as still buffered
        assert estimate.messages_buffered == len(mem.store.journal("short_term")) + len(
            mem.store.journal("sensory")
        )


def _scope():
    from lightmem_hookspecs import Scope

    return Scope()


def test_add_memory_dry_run_counts_the_buffer_already_held(config, llm, ref_host):
    with LightMemory(config, host=ref_host) as mem:
        first, second = sessions(2, turns=4)
        mem.add_memory(first, force_segment=True)  # below the threshold: buffered, no call
        assert llm.chat_requests == []
        journal = mem.store.journal()
        estimate = mem.add_memory(second, force_extract=True, dry_run=True)
        assert estimate.messages_new == len(second) and estimate.batches == 1
        assert estimate.llm_calls == 1 and estimate.prompt_tokens > 0
        assert llm.chat_requests == [] and mem.store.journal() == journal
        again = mem.add_memory(first, force_extract=True, dry_run=True)
        assert again.messages_new == 0  # already journaled: nothing new to pay for
        result = mem.add_memory(second, force_extract=True)
        assert result.batches_extracted == 1
        [request] = llm.chat_requests
        assert "session 0 turn 0" in request.json["messages"][1]["content"]


def test_cli_dry_run_prints_the_cost_and_writes_nothing(billed_llm_config, tmp_path, capsys):
    """The CLI discovers installed plugins: the openai manager on the loopback server."""
    pytest.importorskip("lightmem_openai", reason="lightmem-openai is not installed")
    from lightmem_core.cli import main

    config = {**billed_llm_config, "short_term_buffer_tokens": 300}
    data = tmp_path / "chat.json"
    data.write_text(json.dumps(sessions(3)), encoding="utf-8")
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(config), encoding="utf-8")
    assert main(["add", str(data), "--config", str(cfg), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "dry run: 36 of 36 messages are new; 3 extraction batch(es): 3 LLM call(s)" in out
    assert "nothing was written or spent" in out
    with LightMemory(config) as mem:
        assert mem.store.journal() == []
