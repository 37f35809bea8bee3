"""The ``llama-cpp`` memory manager: chat completions from a GGUF model in a worker process."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
from lightmem_hookspecs import Completion

from .options import LlamaCppOptions
from .process import Worker, WorkerError

__all__ = ["LlamaCppManager", "WorkerError"]


def _stop(holder: dict[str, Worker | None]) -> None:
    worker, holder["worker"] = holder["worker"], None
    if worker is not None:
        worker.stop()


class LlamaCppManager:
    """A :class:`~lightmem_hookspecs.MemoryManager` whose model runs in a worker process.

    The worker (``python -m lightmem_llamacpp.worker``) starts and loads the model on the first
    :meth:`complete` call; this process never imports ``llama_cpp``. With ``json_schema`` the
    output is constrained by a grammar compiled from the schema, so it is JSON of that shape
    unless it is cut off at ``max_tokens``. Calls are serialised (one worker, one model).

    When the worker dies (a native crash, an out-of-memory kill) or does not answer within
    ``options.timeout`` seconds, :meth:`complete` raises :class:`WorkerError` naming the model
    file and the cause; the worker is gone and the next call starts a fresh one. :meth:`close`
    stops it; so does garbage collection of the manager and the end of the process.

    ``engine`` selects what the worker runs: ``"llama_cpp"`` (the model) or ``"standin"``
    (:mod:`lightmem_llamacpp.standin`, for testing the protocol without the native runtime).
    """

    def __init__(
        self, options: LlamaCppOptions, *, model_path: Path, engine: str = "llama_cpp"
    ) -> None:
        self.options = options
        self.model_path = Path(model_path)
        self.model_name = self.model_path.stem
        self.engine = engine
        self._holder: dict[str, Worker | None] = {"worker": None}
        self._lock = threading.Lock()
        self._finalizer = weakref.finalize(self, _stop, self._holder)

    def __repr__(self) -> str:
        state = "loaded" if self.loaded else "not loaded"
        return (
            f"LlamaCppManager(model={self.model_name!r}, n_ctx={self.options.n_ctx}, "
            f"n_gpu_layers={self.options.n_gpu_layers}, {state})"
        )

    @property
    def loaded(self) -> bool:
        """Whether a worker with the model loaded is running."""
        worker = self._holder["worker"]
        return worker is not None and worker.alive()

    @property
    def worker_pid(self) -> int | None:
        """The process id of the running worker, or ``None``."""
        worker = self._holder["worker"]
        return worker.pid if worker is not None and worker.alive() else None

    def _worker(self) -> Worker:
        worker = self._holder["worker"]
        if worker is not None and not worker.alive():
            worker.kill()
            worker = self._holder["worker"] = None
        if worker is None:
            options = attrs.asdict(self.options)
            worker = Worker(
                model_path=self.model_path,
                engine=self.engine,
                options=options,
                start_timeout=self.options.start_timeout,
                echo_stderr=self.options.verbose,
            )
            self._holder["worker"] = worker
        return worker

    def complete(
        self,
        messages: Sequence[Mapping[str, str]],
        *,
        json_schema: Mapping[str, Any] | None = None,
        max_tokens: int | None = None,
    ) -> Completion:
        request: dict[str, Any] = {
            "op": "complete",
            "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
            "json_schema": dict(json_schema) if json_schema is not None else None,
            "max_tokens": max_tokens or self.options.max_tokens,
        }
        with self._lock:
            worker = self._worker()
            try:
                reply = worker.request(request, self.options.timeout)
            except WorkerError:
                worker.kill()
                self._holder["worker"] = None
                raise
        if not reply.get("ok"):
            if reply.get("kind") == "too_long":
                raise RuntimeError(self._too_long(str(reply.get("message"))))
            raise RuntimeError(
                f"memory_manager 'llama-cpp': generation with {str(self.model_path)!r} "
                f"failed in the worker: {reply.get('message')}"
            )
        return Completion(
            text=str(reply.get("text") or ""),
            prompt_tokens=int(reply.get("prompt_tokens", 0)),
            completion_tokens=int(reply.get("completion_tokens", 0)),
            model=self.model_name,
            finish_reason=reply.get("finish_reason"),
        )

    def _too_long(self, detail: str) -> str:
        return (
            f"memory_manager 'llama-cpp': generation failed ({detail}); the context window is "
            f"n_ctx={self.options.n_ctx} tokens: raise memory_manager.configs.n_ctx or lower "
            "short_term_buffer_tokens so batches are smaller"
        )

    def close(self) -> None:
        """Stop the worker (the model is freed with it); the next call starts a new one."""
        with self._lock:
            _stop(self._holder)
