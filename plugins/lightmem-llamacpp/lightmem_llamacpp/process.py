"""The host side of the model worker: start it, talk to it, notice its death, stop it.

The application's process never imports ``llama_cpp``: the model lives in a child process
(:mod:`lightmem_llamacpp.worker`). A native crash, an out-of-memory kill or a hang there ends
that child only; this side turns it into a :class:`WorkerError` naming the model file and the
cause (the signal, the exit status or the timeout) with the tail of the worker's stderr.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: Seconds a worker gets to leave after its input is closed, before it is killed.
STOP_GRACE = 5.0

_PR_SET_PDEATHSIG = 1


class WorkerError(RuntimeError):
    """The model worker died, hung, or could not start."""


def _describe_exit(returncode: int) -> str:
    if returncode < 0:
        number = -returncode
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        text = signal.strsignal(number) or ""
        hint = ""
        if number == signal.SIGKILL:
            hint = "; the kernel's out-of-memory killer or another process killed it"
        elif number == signal.SIGILL:
            hint = "; the native build uses instructions this CPU lacks"
        return f"was killed by signal {name} ({text}{hint})"
    return f"exited with status {returncode}"


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: have the kernel send SIGKILL to the worker when the thread that spawned it ends."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except Exception:
        pass


class Worker:
    """One running worker process with its model loaded."""

    def __init__(
        self,
        *,
        model_path: Path,
        engine: str,
        options: Mapping[str, Any],
        start_timeout: float,
        echo_stderr: bool = False,
    ) -> None:
        self.model_path = Path(model_path)
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=40)
        self._buffer = b""
        self._next_id = 0
        env = dict(os.environ, LIGHTMEM_WORKER_PARENT=str(os.getpid()), PYTHONUNBUFFERED="1")
        # The kernel's parent-death signal follows the spawning *thread*: only the main thread
        # lives as long as the process. From other threads the worker's own watchdog suffices.
        main_thread = threading.current_thread() is threading.main_thread()
        use_pdeathsig = sys.platform.startswith("linux") and main_thread
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lightmem_llamacpp.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            preexec_fn=_die_with_parent if use_pdeathsig else None,
            close_fds=True,
        )
        self.pid = self.process.pid
        self._drain = threading.Thread(
            target=self._drain_stderr, args=(echo_stderr,), daemon=True, name="llama-worker-err"
        )
        self._drain.start()
        load = {
            "op": "load",
            "engine": engine,
            "model_path": str(self.model_path),
            "options": dict(options),
        }
        try:
            self._send(load)
            ready = self._receive(start_timeout, "loading the model")
        except BaseException:
            self.kill()
            raise
        if ready.get("event") != "ready":
            self.kill()
            raise WorkerError(
                f"memory_manager 'llama-cpp': the model worker could not load "
                f"{str(self.model_path)!r}: {ready.get('message', ready)}{self._tail()}"
            )
        self.runtime = str(ready.get("runtime", ""))

    # -- plumbing ---------------------------------------------------------------------------

    def _drain_stderr(self, echo: bool) -> None:
        stream = self.process.stderr
        assert stream is not None
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip()
            self._stderr_tail.append(line)
            if echo:
                print(line, file=sys.stderr)

    def _tail(self) -> str:
        self._drain.join(timeout=0.5)  # let the last lines of a dead worker arrive
        lines = [line for line in self._stderr_tail if line.strip()][-8:]
        return ("; its last stderr lines: " + " | ".join(lines)) if lines else ""

    def _send(self, message: Mapping[str, Any]) -> None:
        stdin = self.process.stdin
        assert stdin is not None
        try:
            stdin.write((json.dumps(message) + "\n").encode("utf-8"))
            stdin.flush()
        except (BrokenPipeError, OSError):
            raise self._died("while receiving a request") from None

    def _receive(self, timeout: float, doing: str) -> dict[str, Any]:
        stdout = self.process.stdout
        assert stdout is not None
        fd = stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.kill()
                raise WorkerError(
                    f"memory_manager 'llama-cpp': the model worker for "
                    f"{str(self.model_path)!r} did not answer within {timeout:g} s while "
                    f"{doing}; it was stopped (raise memory_manager.configs.timeout for "
                    f"slow models; the next call starts a fresh worker){self._tail()}"
                )
            ready, _, _ = select.select([fd], [], [], min(remaining, 1.0))
            if not ready:
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise self._died(f"while {doing}")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return json.loads(line)

    def _died(self, doing: str) -> WorkerError:
        try:
            returncode = self.process.wait(timeout=STOP_GRACE)
        except subprocess.TimeoutExpired:
            self.kill()
            returncode = self.process.returncode
        return WorkerError(
            f"memory_manager 'llama-cpp': the model worker for {str(self.model_path)!r} "
            f"{_describe_exit(returncode)} {doing}; the next call starts a fresh worker"
            f"{self._tail()}"
        )

    # -- API --------------------------------------------------------------------------------

    def alive(self) -> bool:
        return self.process.poll() is None

    def request(self, message: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send one request and wait for its reply; a dead or hung worker is a WorkerError."""
        self._next_id += 1
        rid = self._next_id
        self._send({**message, "id": rid})
        reply = self._receive(timeout, "answering a request")
        if reply.get("id") != rid:
            self.kill()
            raise WorkerError(
                f"memory_manager 'llama-cpp': the model worker answered request "
                f"{reply.get('id')!r} when {rid} was expected; it was stopped"
            )
        return reply

    def stop(self) -> None:
        """Close the worker's input (it exits by itself) and wait; kill it if it lingers."""
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        try:
            self.process.wait(timeout=STOP_GRACE)
        except subprocess.TimeoutExpired:
            self.kill()
        self._close_pipes()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self._close_pipes()

    def _close_pipes(self) -> None:
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
