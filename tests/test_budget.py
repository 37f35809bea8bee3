"""The per-memory LLM token budget: extraction waits, messages stay journaled, nothing is lost.

The loopback server answers as the scripted model and reports tokens as OpenAI bills them.
"""

from __future__ import annotations

import json
import time

import pytest

pytest.importorskip("lightmem_openai", reason="lightmem-openai is not installed")
pytest.importorskip("tiktoken", reason="the billing count needs tiktoken")

from lightmem_core import LightMemory
from lightmem_core.errors import ConfigError
from lightmem_core.eval.economy import Billed, ScriptedResponder
from lightmem_core.pipeline import budget

pytestmark = pytest.mark.slow


def turns(first: int, count: int) -> list[dict]:
    return [
        {
            "role": "user",
            "content": f"note {n}: the bakery on Rua Nova opens at seven on weekdays",
            "time_stamp": "2024-03-02T09:00:00",
        }
        for n in range(first, first + count)
    ]


@pytest.fixture
def config(tmp_path, openai_server):
    openai_server.responder = Billed(ScriptedResponder())
    return {
        "memory_manager": {
            "model_name": "openai",
            "configs": {
                "model": "gpt-4o-mini",
                "api_key": "sk-test-budget",
                "openai_base_url": openai_server.base_url,
            },
        },
        "background_retry": False,
        "llm_tokens_per_hour": 1200,
        "memory_dir": str(tmp_path / "mem"),
    }


def age_ledger(mem, seconds: float) -> None:
    """Let ``seconds`` pass for the budget: move every ledger entry back in time."""
    rows = json.loads(mem.store.get_meta(budget.LEDGER))
    mem.store.set_meta(budget.LEDGER, json.dumps([[t - seconds, n] for t, n in rows]))


def test_extraction_waits_for_the_budget_and_resumes_without_losing_anything(config, openai_server):
    with LightMemory(config) as mem:
        first = mem.add(turns(0, 5))
        assert first.batches_extracted == 1
        spent = mem.stats()["budget"]["spent"]["last_hour"]
        assert spent == mem.get_token_statistics()["total"]["total_tokens"] > 700
        calls = len(openai_server.chat_requests)

        waiting = mem.add(turns(5, 5))  # would pass 1200 tokens this hour: it waits
        assert waiting.batches_extracted == 0 and waiting.batches_pending == 1
        assert len(openai_server.chat_requests) == calls
        assert len(mem.store.journal()) == 10  # the messages are kept
        status = mem.stats()["budget"]
        assert status["state"] == "waiting for the budget"
        assert status["waiting_batches"] == 1 and status["limits"] == {"tokens_per_hour": 1200}
        assert status["resumes_at"] > budget.iso(time.time() + 3000)  # about an hour from now

        assert mem.retry().batches_extracted == 0  # still within the hour: still waiting
        assert len(openai_server.chat_requests) == calls

        age_ledger(mem, 3601)
        resumed = mem.retry()
        assert resumed.batches_extracted == 1 and resumed.batches_pending == 0
        assert len(mem.get_all()) == 10  # every message extracted once
        assert mem.stats()["budget"]["state"] == "limited"


def test_a_batch_larger_than_the_budget_is_sent_once_the_window_is_empty(config):
    config["llm_tokens_per_hour"] = 100
    with LightMemory(config) as mem:
        assert mem.add(turns(0, 5)).batches_extracted == 1  # nothing spent yet: it goes
        assert mem.add(turns(5, 1)).batches_pending == 1


def test_budget_values_are_checked(config):
    config["llm_tokens_per_day"] = 0
    with pytest.raises(ConfigError, match="llm_tokens_per_day"):
        LightMemory(config)
