"""Failed extraction batches are retried off the hot path: never by another add, in the
background after a backoff, without holding the lock searches take, or at once by retry()."""

from __future__ import annotations

import threading
import time

from lightmem_core import LightMemory
from lightmem_core.eval.economy import scripted_responder
from lightmem_core.retry import backoff
from lightmem_core.testing.reference import reference_config


def _memory(tmp_path, llm, **extra):
    import lightmem_core.builtin as builtin
    from lightmem_core.testing import fresh_host
    from lightmem_core.testing.reference import ReferencePlugin

    config = reference_config(tmp_path / "m", memory_manager={"model_name": "scripted"}, **extra)
    return LightMemory(config, host=fresh_host(builtin, ReferencePlugin(memory_manager=llm)))


def _msg(i):
    return {"role": "user", "content": f"fact number {i} about my garden", "id": f"m{i}"}


def test_backoff_doubles_up_to_the_cap():
    assert [backoff(n, 5.0, 30.0) for n in (1, 2, 3, 4, 5)] == [5.0, 10.0, 20.0, 30.0, 30.0]


def test_an_add_never_retries_other_batches_first(tmp_path, llm):
    llm.responder = scripted_responder
    llm.fail_rate(1.0)
    with _memory(tmp_path, llm, background_retry=False) as mem:
        for i in range(5):
            result = mem.add([_msg(i)], user_id="u")
            assert result.batches_pending == i + 1
        assert len(llm.chat_requests) == 5  # one per add, not 1 + 2 + ... + 5
        llm.fail_rate(0.0)
        retried = mem.retry()
        assert retried.batches_extracted == 5 and retried.batches_pending == 0
        assert len(mem.get_all(user_id="u")) == 5


def test_background_retry_after_backoff_does_not_block_searches(tmp_path, llm):
    llm.responder = scripted_responder
    with _memory(tmp_path, llm, retry_backoff=0.2, retry_backoff_max=0.2) as mem:
        mem.add([{"role": "user", "content": "my rose is red", "id": "seed"}], user_id="u")
        llm.fail_rate(1.0)
        mem.add([_msg(1)], user_id="u")
        assert mem.store.stats()["batches"] == {"done": 1, "failed": 1}
        in_call = threading.Event()

        def slow(body):
            in_call.set()
            time.sleep(1.5)
            return scripted_responder(body)

        llm.responder = slow
        llm.fail_rate(0.0)
        assert in_call.wait(10), "the background retry never called the LLM"
        started = time.perf_counter()
        hits = mem.search("rose", user_id="u")
        assert time.perf_counter() - started < 1.0  # not queued behind the retry's LLM call
        assert any("rose" in h.entry.memory for h in hits)
        deadline = time.monotonic() + 15
        while mem.store.pending_batches() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert mem.store.pending_batches() == []
        assert len(mem.get_all(user_id="u")) == 2
