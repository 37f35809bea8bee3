"""Reads do not wait for writes: a search runs while an ingestion waits on its LLM call."""

from __future__ import annotations

import threading
import time

from lightmem_core import LightMemory
from lightmem_core.testing.reference import reference_config


def test_search_does_not_wait_for_an_extraction_call(tmp_path, ref_host, llm):
    from lightmem_core.eval.economy import scripted_responder

    llm.responder = scripted_responder
    config = reference_config(tmp_path / "mem", memory_manager={"model_name": "scripted"})
    with LightMemory(config, host=ref_host) as mem:
        mem.add([{"role": "user", "content": "My dog is called Biscuit"}], user_id="ann")
        assert mem.get_all(user_id="ann"), "the first fact is stored"

        entered, release = threading.Event(), threading.Event()

        def slow(body):
            entered.set()
            release.wait(20)
            return scripted_responder(body)

        llm.responder = slow
        writer = threading.Thread(
            target=mem.add,
            args=([{"role": "user", "content": "I moved to Porto last spring"}],),
            kwargs={"user_id": "ann"},
        )
        writer.start()
        try:
            assert entered.wait(20), "the extraction call never started"
            started = time.perf_counter()
            hits = mem.search("dog", limit=3, user_id="ann")
            waited = time.perf_counter() - started
            # the search saw what was committed, while the LLM call was still in flight
            assert hits and "Biscuit" in hits[0].entry.memory
            assert waited < 5.0, f"the search waited {waited:.1f} s for the extraction"
            assert writer.is_alive()
        finally:
            release.set()
            writer.join(30)
        assert any("Porto" in e.memory for e in mem.get_all(user_id="ann"))
