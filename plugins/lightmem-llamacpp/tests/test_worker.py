"""The out-of-process protocol, against the real worker process running the stand-in engine.

Every test here starts real ``python -m lightmem_llamacpp.worker`` processes; only the model is
replaced (:mod:`lightmem_llamacpp.standin`), so they need no native runtime and run in the
default test install. Directives in the prompt make the worker sleep, die by a signal or exit.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from lightmem_hookspecs import BatchState, Completion, hookimpl
from lightmem_llamacpp.manager import LlamaCppManager, WorkerError
from lightmem_llamacpp.plugin import LlamaCppOptions, resolve_model_path

from lightmem_core.testing.conformance.memory_manager import MemoryManagerConformance

HELLO = [{"role": "user", "content": "Say hello."}]


def gone(pid: int) -> bool:
    """Whether process ``pid`` no longer runs (a zombie waiting for its reaper counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def wait_gone(pid: int, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if gone(pid):
            return True
        time.sleep(0.05)
    return gone(pid)


@pytest.fixture
def model_file(tmp_path) -> Path:
    path = tmp_path / "tiny-standin.gguf"
    path.write_bytes(b"GGUF" + bytes(64))
    return path


@pytest.fixture
def make(model_file):
    made = []

    def make(**options) -> LlamaCppManager:
        manager = LlamaCppManager(
            LlamaCppOptions(**options), model_path=model_file, engine="standin"
        )
        made.append(manager)
        return manager

    yield make
    for manager in made:
        manager.close()


class TestStandInWorkerConformance(MemoryManagerConformance):
    supports_json_schema = True

    @pytest.fixture
    def backend(self, make):
        return make()


def test_the_worker_starts_on_first_use_and_answers(make):
    manager = make()
    assert not manager.loaded and manager.worker_pid is None
    result = manager.complete(HELLO, max_tokens=50)
    assert isinstance(result, Completion)
    assert result.text == "You said: Say hello."
    assert (result.prompt_tokens, result.completion_tokens) == (2, 4)
    assert result.finish_reason == "stop"
    assert manager.loaded and manager.worker_pid not in (None, os.getpid())
    assert manager.complete(HELLO, max_tokens=2).finish_reason == "length"


def test_close_stops_the_worker_and_the_next_call_starts_another(make):
    manager = make()
    manager.complete(HELLO)
    first = manager.worker_pid
    manager.close()
    assert wait_gone(first)
    assert not manager.loaded
    manager.complete(HELLO)
    assert manager.worker_pid not in (None, first)


def test_a_worker_killed_mid_request_is_a_typed_error_then_a_fresh_worker(make, model_file):
    manager = make()
    manager.complete(HELLO)
    pid = manager.worker_pid
    assert pid is not None
    killer = threading.Timer(0.5, os.kill, (pid, signal.SIGKILL))
    killer.start()
    started = time.monotonic()
    with pytest.raises(WorkerError) as caught:
        manager.complete([{"role": "user", "content": "[standin:sleep=30] tell me a story"}])
    assert time.monotonic() - started < 10
    message = str(caught.value)
    assert str(model_file) in message
    assert "SIGKILL" in message and "out-of-memory" in message
    assert "next call starts a fresh worker" in message
    assert wait_gone(pid)
    assert manager.complete(HELLO).text == "You said: Say hello."
    assert manager.worker_pid not in (None, pid)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("SIGSEGV", "SIGSEGV (Segmentation fault"),
        ("SIGILL", "SIGILL (Illegal instruction; the native build uses instructions"),
        ("SIGABRT", "SIGABRT (Aborted"),
    ],
)
def test_a_native_crash_names_the_signal_and_the_model(make, model_file, name, expected):
    manager = make()
    with pytest.raises(WorkerError) as caught:
        manager.complete([{"role": "user", "content": f"[standin:signal={name}]"}])
    assert expected in str(caught.value)
    assert str(model_file) in str(caught.value)
    assert not manager.loaded
    assert manager.complete(HELLO).text == "You said: Say hello."


def test_a_worker_that_exits_reports_its_status(make):
    manager = make()
    with pytest.raises(WorkerError, match="exited with status 7 while answering a request"):
        manager.complete([{"role": "user", "content": "[standin:exit=7]"}])


def test_a_hung_worker_is_stopped_after_the_timeout(make, model_file):
    manager = make(timeout=1.0)
    manager.complete(HELLO)
    pid = manager.worker_pid
    started = time.monotonic()
    with pytest.raises(WorkerError) as caught:
        manager.complete([{"role": "user", "content": "[standin:sleep=60]"}])
    assert time.monotonic() - started < 8
    assert "did not answer within 1 s" in str(caught.value)
    assert "memory_manager.configs.timeout" in str(caught.value)
    assert str(model_file) in str(caught.value)
    assert pid is not None and wait_gone(pid)
    assert manager.complete(HELLO).text == "You said: Say hello."


def test_a_model_the_worker_cannot_load_is_a_clear_error(tmp_path):
    bad = tmp_path / "not-a-model.gguf"
    bad.write_bytes(b"this is text")
    manager = LlamaCppManager(LlamaCppOptions(), model_path=bad, engine="standin")
    with pytest.raises(WorkerError, match=r"could not load .*not-a-model\.gguf.* not a GGUF"):
        manager.complete(HELLO)
    assert not manager.loaded


def test_a_prompt_too_long_is_a_clear_error_and_keeps_the_worker(make):
    manager = make(n_ctx=16)
    manager.complete(HELLO)
    pid = manager.worker_pid
    with pytest.raises(RuntimeError, match=r"n_ctx=16 tokens: raise memory_manager\.configs"):
        manager.complete([{"role": "user", "content": "word " * 40}])
    assert manager.worker_pid == pid


_ORPHAN_SCRIPT = """
import os, signal, sys, threading
from pathlib import Path
from lightmem_llamacpp.manager import LlamaCppManager
from lightmem_llamacpp.plugin import LlamaCppOptions

def start():
    manager = LlamaCppManager(LlamaCppOptions(), model_path=Path(sys.argv[1]), engine="standin")
    manager.complete([{"role": "user", "content": "hi"}])
    return manager

if sys.argv[2] == "thread":
    box = []
    t = threading.Thread(target=lambda: box.append(start()))
    t.start(); t.join()
    manager = box[0]
else:
    manager = start()
print(manager.worker_pid, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("where", ["main", "thread"])
def test_no_worker_outlives_a_killed_application(model_file, where):
    """SIGKILL leaves no chance to clean up: the kernel (main thread) or the watchdog must."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_ORPHAN_SCRIPT), str(model_file), where],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    worker = int(done.stdout.split()[0])
    assert wait_gone(worker, 10.0), f"worker {worker} outlived its parent"


def test_the_application_process_never_imports_llama_cpp(model_file):
    code = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from lightmem_llamacpp.plugin import LlamaCppOptions
        from lightmem_llamacpp.manager import LlamaCppManager
        m = LlamaCppManager(LlamaCppOptions(), model_path=Path(sys.argv[1]), engine="standin")
        m.complete([{"role": "user", "content": "hi"}])
        m.close()
        print(sorted(k for k in sys.modules if k.startswith(("llama_cpp", "numpy"))))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(model_file)], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


class _StandInLlamaPlugin:
    """Registers ``llama-cpp`` with the stand-in engine: the real worker, no native model."""

    @hookimpl
    def lightmem_register_backends(self, registrar):
        def build(options, context=None):
            return LlamaCppManager(
                options, model_path=resolve_model_path(options), engine="standin"
            )

        registrar.memory_manager(
            "llama-cpp", build, options=LlamaCppOptions, description="stand-in"
        )


def test_a_worker_killed_during_extraction_leaves_the_batch_pending(tmp_path, model_file, caplog):
    import lightmem_core.builtin as builtin
    from lightmem_core import LightMemory
    from lightmem_core.testing import fresh_host
    from lightmem_core.testing.reference import ReferencePlugin, reference_config

    host = fresh_host(builtin, ReferencePlugin(), _StandInLlamaPlugin())
    config = reference_config(
        tmp_path / "mem",
        memory_manager={"model_name": "llama-cpp", "configs": {"model_path": str(model_file)}},
        metadata_generate=False,
        text_summary=False,
        update=None,
    )
    mem = LightMemory(config, host=host)
    try:
        llm = mem.backends.get("memory_manager").backend
        first: list[int] = []

        def kill_the_first_worker() -> None:
            deadline = time.monotonic() + 30
            while llm.worker_pid is None and time.monotonic() < deadline:
                time.sleep(0.02)
            if llm.worker_pid is not None:
                first.append(llm.worker_pid)
                os.kill(llm.worker_pid, signal.SIGKILL)

        killer = threading.Thread(target=kill_the_first_worker)
        killer.start()
        messages = [
            {
                "role": "user",
                "content": "I adopted a beagle named Rex. [standin:sleep=1]",
                "time_stamp": "2023/05/20 (Sat) 02:21",
            },
        ]
        with caplog.at_level(logging.WARNING, logger="lightmem_core"):
            mem.add_memory(messages, force_segment=True, force_extract=True)
        killer.join()
        assert first, "the worker never started"
        pending = mem.store.pending_batches()
        assert len(pending) == 1
        batch = mem.store.batch(pending[0])
        assert batch is not None and batch.state is BatchState.FAILED
        assert "SIGKILL" in batch.error and str(model_file) in batch.error
        assert "WorkerError" in batch.error
        assert mem.store.stats()["entries"] == {}
        assert any("stays pending" in r.getMessage() for r in caplog.records)
        assert wait_gone(first[0])

        mem.retry()
        assert mem.store.pending_batches() == []
        assert llm.worker_pid not in (None, first[0])
        hits = mem.search("beagle Rex", limit=3)
        assert hits and "Rex" in hits[0].entry.memory
    finally:
        mem.close()
    assert llm.worker_pid is None
