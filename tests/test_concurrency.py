"""Reads do not wait for writes: a search runs while an ingestion waits on its LLM call."""

from __future__ import annotations

import threading
import time

from lightmem_hookspecs import hookimpl

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


class _Gate:
    """A pre-compressor and a topic segmenter that hold their call until ``release`` is set."""

    def __init__(self) -> None:
        self.compressing, self.segmenting = threading.Event(), threading.Event()
        self.release = threading.Event()

    @hookimpl
    def lightmem_register_backends(self, registrar):
        gate = self

        class Compressor:
            def compress(self, texts):
                gate.compressing.set()
                gate.release.wait(20)
                return list(texts)

        registrar.pre_compressor("gate", lambda options, context: Compressor())

        class Segmenter:
            def segment(self, messages):
                gate.segmenting.set()
                gate.release.wait(20)
                return []

        registrar.topic_segmenter("gate", lambda options, context: Segmenter())


def _search_while_held(mem, gate, started: threading.Event, turns: list[dict]) -> float:
    writer = threading.Thread(target=mem.add, args=(turns,), kwargs={"user_id": "ann"})
    writer.start()
    try:
        assert started.wait(20), "the model call never started"
        t0 = time.perf_counter()
        hits = mem.search("dog", limit=3, user_id="ann")
        waited = time.perf_counter() - t0
        assert hits and "Biscuit" in hits[0].entry.memory
        assert writer.is_alive()
        return waited
    finally:
        gate.release.set()
        writer.join(30)


def test_search_does_not_wait_for_compression_or_segmentation(tmp_path, llm):
    import lightmem_core.builtin as builtin
    from lightmem_core.testing import fresh_host
    from lightmem_core.testing.reference import ReferencePlugin

    turns = [
        {"role": "user", "content": "I moved to Porto last spring"},
        {"role": "user", "content": "The weather there is mild"},
    ]
    for stage in ("compressing", "segmenting"):
        gate = _Gate()
        host = fresh_host(builtin, ReferencePlugin(memory_manager=llm))
        host.register(gate, "gate")
        config = reference_config(
            tmp_path / stage,
            pre_compress=stage == "compressing",
            pre_compressor={"model_name": "gate"},
            topic_segment=stage == "segmenting",
            topic_segmenter={"model_name": "gate"},
        )
        with LightMemory(config, host=host) as mem:
            gate.release.set()
            mem.add([{"role": "user", "content": "My dog is called Biscuit"}], user_id="ann")
            gate.release.clear()
            gate.compressing.clear()
            gate.segmenting.clear()
            waited = _search_while_held(mem, gate, getattr(gate, stage), turns)
            assert waited < 5.0, f"the search waited {waited:.1f} s while {stage}"
            assert any("Porto" in e.memory for e in mem.get_all(user_id="ann"))
