"""Many writers and readers on one Postgres memory; a worker killed with -9 mid-batch.

The writers add LoCoMo sessions through the scripted model on a loopback server with latency
(``benchmarks/workload.py``, the load benchmark's workload at a small shape).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
from lightmem_hookspecs import BatchState, Scope

from lightmem_core import LightMemory
from lightmem_core.testing.openai_server import OpenAICompatibleServer

# The writers' LLM is the openai memory manager talking to the loopback server (installed by
# the repository's requirements-test.txt; a session with this plugin alone skips this module).
pytest.importorskip("lightmem_openai", reason="lightmem-openai (the HTTP LLM client) is absent")

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))  # the workload module, also in the children (spawn)
import workload  # noqa: E402


@pytest.fixture
def locomo_file(tmp_path):
    """Two small LoCoMo-format samples (the dataset is not part of the repository)."""
    import json

    def sample(n: int) -> dict:
        conversation: dict = {"speaker_a": "Caroline", "speaker_b": "Melanie"}
        for s in range(1, 4):
            conversation[f"session_{s}_date_time"] = f"1:56 pm on {s} May, 2023"
            conversation[f"session_{s}"] = [
                {
                    "speaker": "Caroline" if t % 2 == 0 else "Melanie",
                    "dia_id": f"D{s}:{t + 1}",
                    "text": f"sample {n} session {s} turn {t}: I went to the support group "
                    f"and painted a sunset number {t}",
                }
                for t in range(6)
            ]
        return {"sample_id": f"conv-{n}", "conversation": conversation, "qa": []}

    path = tmp_path / "locomo.json"
    path.write_text(json.dumps([sample(n) for n in range(4)]))
    return str(path)


def test_many_writers_and_readers_lose_duplicate_and_cross_nothing(
    tmp_path, postgres_dsn, schema, locomo_file
):
    with OpenAICompatibleServer(responder=workload.delayed_responder(0.05)) as llm:
        config = workload.memory_config(postgres_dsn, schema, llm.base_url, str(tmp_path))
        result = workload.run(
            config,
            locomo_file,
            processes=2,
            threads=2,
            n_sessions=3,
            searchers=1,
            tag="w",
            warm=False,  # every entry of the memory is one of the counted turns
        )
    assert result["errors"] == [] and set(result["exit_codes"]) == {0}
    assert result["turns"] == 4 * 3 * 6 and result["searches"] > 0
    assert result["crossed"] == 0
    with LightMemory(config, host=workload.host()) as mem:
        checked = workload.verify(mem.store, result["sent"])
        assert checked == {"lost": 0, "duplicated": 0, "cross_scope": 0, "unextracted": 0}
        assert mem.store.count_entries() == result["turns"]


def test_a_worker_killed_mid_batch_leaves_the_batch_to_be_claimed_again(
    tmp_path, postgres_dsn, schema
):
    release = threading.Event()

    def hang(body):
        release.wait(120)
        return "{}"

    messages = [
        {"id": f"k{i}", "role": "user", "content": f"I planted {i} apple trees"} for i in range(3)
    ]
    with OpenAICompatibleServer(responder=hang) as slow:
        config = workload.memory_config(postgres_dsn, schema, slow.base_url, str(tmp_path))
        child = multiprocessing.get_context("spawn").Process(
            target=workload.add_and_hang, args=(config, messages)
        )
        child.start()
        with LightMemory(config, host=workload.host()) as watcher:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                running = watcher.store.batches([BatchState.RUNNING])
                if running and slow.chat_requests:
                    break
                time.sleep(0.1)
            else:
                pytest.fail("the worker never claimed its batch")
            os.kill(child.pid, signal.SIGKILL)  # in the middle of the extraction call
            child.join(30)
            assert child.exitcode == -signal.SIGKILL
        release.set()
    with OpenAICompatibleServer(responder=workload.delayed_responder(0.0)) as fast:
        config = workload.memory_config(postgres_dsn, schema, fast.base_url, str(tmp_path))
        with LightMemory(config, host=workload.host()) as mem:
            deadline = time.monotonic() + 30
            while not mem.store.batches([BatchState.PENDING]) and time.monotonic() < deadline:
                time.sleep(0.2)  # the server notices the dead worker's connection is gone
            result = mem.retry()
            assert result.batches_pending == 0
            checked = workload.verify(mem.store, {"victim": 3})
            assert checked == {"lost": 0, "duplicated": 0, "cross_scope": 0, "unextracted": 0}
            assert mem.store.count_entries() == 3
            assert {e.scope for e in mem.store.entries()} == {Scope(user_id="victim")}
