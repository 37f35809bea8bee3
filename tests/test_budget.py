"""The per-memory LLM token budget: extraction waits, messages stay journaled, nothing is lost.

The testing kit's scripted memory manager answers as the scripted model and reports tokens as
the LLM layer counts them (cl100k when tiktoken is installed), on the reference backends.
"""

from __future__ import annotations

import json
import time

import pytest

from lightmem_core import LightMemory
from lightmem_core.errors import ConfigError
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
def config(scripted_config):
    return {
        **scripted_config,
        "background_retry": False,
        "llm_tokens_per_hour": 1200,
    }


def age_ledger(mem, seconds: float) -> None:
    """Let ``seconds`` pass for the budget: move every ledger entry back in time."""
    rows = json.loads(mem.store.get_meta(budget.LEDGER))
    mem.store.set_meta(budget.LEDGER, json.dumps([[t - seconds, n] for t, n in rows]))


def test_extraction_waits_for_the_budget_and_resumes_without_losing_anything(config, llm, ref_host):
    with LightMemory(config, host=ref_host) as mem:
        first = mem.add(turns(0, 5))
        assert first.batches_extracted == 1
        spent = mem.stats()["budget"]["spent"]["last_hour"]
        assert spent == mem.get_token_statistics()["total"]["total_tokens"] > 700
        calls = len(llm.chat_requests)

        waiting = mem.add(turns(5, 5))  # would pass 1200 tokens this hour: it waits
        assert waiting.batches_extracted == 0 and waiting.batches_pending == 1
        assert len(llm.chat_requests) == calls
        assert len(mem.store.journal()) == 10  # the messages are kept
        status = mem.stats()["budget"]
        assert status["state"] == "waiting for the budget"
        assert status["waiting_batches"] == 1 and status["limits"] == {"tokens_per_hour": 1200}
        assert status["resumes_at"] > budget.iso(time.time() + 3000)  # about an hour from now

        assert mem.retry().batches_extracted == 0  # still within the hour: still waiting
        assert len(llm.chat_requests) == calls

        age_ledger(mem, 3601)
        resumed = mem.retry()
        assert resumed.batches_extracted == 1 and resumed.batches_pending == 0
        assert len(mem.get_all()) == 10  # every message extracted once
        assert mem.stats()["budget"]["state"] == "limited"


def test_a_batch_larger_than_the_budget_is_sent_once_the_window_is_empty(config, ref_host):
    config["llm_tokens_per_hour"] = 100
    with LightMemory(config, host=ref_host) as mem:
        assert mem.add(turns(0, 5)).batches_extracted == 1  # nothing spent yet: it goes
        assert mem.add(turns(5, 1)).batches_pending == 1


def test_budget_values_are_checked(config, ref_host):
    config["llm_tokens_per_day"] = 0
    with pytest.raises(ConfigError, match="llm_tokens_per_day"):
        LightMemory(config, host=ref_host)


# -- a budget per add_memory call ---------------------------------------------------------------


def session(first: int, count: int) -> list[dict]:
    return [
        {
            "id": f"m{n:03d}",
            "role": "user",
            "content": f"note {n}: the ferry to Cacilhas leaves at {n % 12 + 1} from pier {n}",
            "time_stamp": "2024-03-02T09:00:00",
        }
        for n in range(first, first + count)
    ]


def cited(mem) -> list[str]:
    """Source message ids of every memory, one entry per citation."""
    return sorted(s for e in mem.get_all() for s in e.source_message_ids)


def prompt_of(mem, messages) -> int:
    return mem.add_memory(messages, force_extract=True, dry_run=True).prompt_tokens


def test_one_add_memory_spends_at_most_its_budget_and_holds_the_rest(config, llm, ref_host):
    del config["llm_tokens_per_hour"]
    with LightMemory(config, host=ref_host) as mem:
        cap = prompt_of(mem, session(0, 6))
        assert prompt_of(mem, session(0, 20)) > cap  # the whole session does not fit

        first = mem.add_memory(session(0, 20), force_extract=True, token_budget=cap)
        assert first.batches_extracted == 1 and first.batches_pending == 1
        assert len(llm.chat_requests) == 1
        assert 0 < first.usage.prompt_tokens <= cap
        done = cited(mem)
        assert 1 <= len(done) < 20 and done == [f"m{n:03d}" for n in range(len(done))]
        assert len(mem.store.journal()) == 20  # held messages are kept
        status = mem.stats()["budget"]
        assert status["held_batches"] == 1 and status["state"] == "waiting for the budget"
        assert status["resumes_at"] is None  # no clock releases it

        # the next call takes up the held messages first, within its own budget
        second = mem.add_memory(session(20, 1), force_extract=True, token_budget=cap)
        assert second.usage.prompt_tokens <= cap
        assert len(cited(mem)) > len(done)

        rest = mem.retry()  # retry() extracts everything pending, whatever the per-call budget
        assert rest.batches_pending == 0
        assert cited(mem) == [f"m{n:03d}" for n in range(21)]  # each message once


def test_the_configured_budget_applies_to_every_call_and_held_batches_stay_put(
    config, llm, ref_host
):
    del config["llm_tokens_per_hour"]
    config["background_retry"] = True
    config["retry_backoff"] = 0.01
    with LightMemory(config, host=ref_host) as probe:
        cap = prompt_of(probe, session(0, 4))
    config["llm_tokens_per_add"] = cap
    with LightMemory(config, host=ref_host) as mem:
        assert mem.stats()["budget"]["limits"] == {"tokens_per_add": cap}
        mem.add_memory(session(0, 12), force_extract=True)
        calls = len(llm.chat_requests)
        assert calls == 1 and mem.stats()["budget"]["held_batches"] == 1
        time.sleep(0.5)  # the background retrier does not take a held batch
        assert len(llm.chat_requests) == calls
        assert mem.stats()["budget"]["held_batches"] == 1

        for n in range(12, 40):  # one turn per call: the backlog drains within each call's cap
            result = mem.add_memory(session(n, 1), force_extract=True)
            assert result.usage.prompt_tokens <= cap
        assert mem.stats()["budget"]["held_batches"] == 0
        assert cited(mem) == [f"m{n:03d}" for n in range(40)]


def test_a_message_larger_than_the_budget_still_goes_so_nothing_blocks(config, ref_host):
    del config["llm_tokens_per_hour"]
    with LightMemory(config, host=ref_host) as mem:
        result = mem.add_memory(session(0, 3), force_extract=True, token_budget=1)
        assert result.batches_extracted == 1 and cited(mem) == ["m000"]
        assert mem.stats()["budget"]["held_batches"] == 1


@pytest.mark.parametrize("bad", [0, -5, 2.5, "100", True])
def test_a_bad_token_budget_is_refused_before_anything_is_written(config, ref_host, bad):
    with LightMemory(config, host=ref_host) as mem:
        with pytest.raises(ConfigError, match="token_budget"):
            mem.add_memory(session(0, 2), force_extract=True, token_budget=bad)
        with pytest.raises(ConfigError, match="token_budget"):
            mem.add_memory(session(0, 2), dry_run=True, token_budget=bad)
        assert mem.store.journal() == [] and mem.get_all() == []
    config["llm_tokens_per_add"] = 0
    with pytest.raises(ConfigError, match="llm_tokens_per_add"):
        LightMemory(config, host=ref_host)


def test_lightmem_add_token_budget(billed_llm_config, tmp_path, capsys):
    """The CLI discovers installed plugins: the openai manager on the loopback server."""
    pytest.importorskip("lightmem_openai", reason="lightmem-openai is not installed")
    pytest.importorskip("tiktoken", reason="the billing count needs tiktoken")
    from lightmem_core.cli import main

    config = {**billed_llm_config, "background_retry": False}
    conf = tmp_path / "config.json"
    conf.write_text(json.dumps(config))
    data = tmp_path / "session.json"
    data.write_text(json.dumps(session(0, 20)))
    with LightMemory(config) as probe:
        cap = prompt_of(probe, session(0, 5))
    assert main(["add", str(data), "--config", str(conf), "--token-budget", str(cap)]) == 0
    assert "1 extraction batch(es) held by the token budget" in capsys.readouterr().out
    assert main(["retry", "--config", str(conf)]) == 0
    with LightMemory(config) as mem:
        assert cited(mem) == [f"m{n:03d}" for n in range(20)]
