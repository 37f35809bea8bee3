"""The ``llama-cpp`` memory manager: chat completions from a GGUF model in a worker process."""

from __future__ import annotations

import logging
import threading
import warnings
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
from lightmem_hookspecs import Completion

from .errors import KVCacheWarning
from .options import LlamaCppOptions
from .process import Worker, WorkerError

__all__ = ["KVCacheWarning", "LlamaCppManager", "WorkerError"]

log = logging.getLogger("lightmem.llamacpp")

_COUNTERS = (
    "calls",
    "hits",
    "prompt_tokens",
    "restored_tokens",
    "reused_tokens",
    "evaluated_tokens",
    "states_saved",
    "states_rebuilt",
)


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

    Prompts are evaluated in blocks of ``kv_cache_block`` tokens, so an answer depends on its
    prompt alone (see :mod:`lightmem_llamacpp.kvcache`). With ``kv_cache_dir`` (configuration
    ``kv_cache: true``) the state of each recurring prompt prefix is kept in a file there and
    restored by later calls; ``Completion.cached_tokens`` counts the prompt tokens not
    evaluated again and :meth:`cache_stats` the totals (the optional
    :class:`~lightmem_hookspecs.CacheStats`). An unusable cache file is removed and rebuilt
    with a :class:`KVCacheWarning`.
    """

    def __init__(
        self,
        options: LlamaCppOptions,
        *,
        model_path: Path,
        engine: str = "llama_cpp",
        kv_cache_dir: Path | None = None,
    ) -> None:
        self.options = options
        self.kv_cache_dir = Path(kv_cache_dir) if kv_cache_dir is not None else None
        self._stats = dict.fromkeys(_COUNTERS, 0)
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
    def max_tokens(self) -> int:
        """The answer limit of a call that gives none (the optional
        :class:`~lightmem_hookspecs.AnswerLimit`)."""
        return self.options.max_tokens

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
            options["kv_cache"] = self.kv_cache_dir is not None
            options["kv_cache_dir"] = str(self.kv_cache_dir) if self.kv_cache_dir else None
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
        cache = reply.get("cache") or {}
        cached = self._count(int(reply.get("prompt_tokens", 0)), cache)
        return Completion(
            text=str(reply.get("text") or ""),
            prompt_tokens=int(reply.get("prompt_tokens", 0)),
            completion_tokens=int(reply.get("completion_tokens", 0)),
            model=self.model_name,
            finish_reason=reply.get("finish_reason"),
            cached_tokens=cached,
        )

    def _count(self, prompt_tokens: int, cache: Mapping[str, Any]) -> int:
        restored = int(cache.get("restored_tokens") or 0)
        reused = int(cache.get("reused_tokens") or 0)
        with self._lock:
            s = self._stats
            s["calls"] += 1
            s["hits"] += restored > 0
            s["prompt_tokens"] += prompt_tokens
            s["restored_tokens"] += restored
            s["reused_tokens"] += reused
            s["evaluated_tokens"] += int(cache.get("evaluated_tokens") or prompt_tokens)
            s["states_saved"] += bool(cache.get("saved"))
        for event in cache.get("events") or ():
            message = (
                f"memory_manager 'llama-cpp': KV cache file {event.get('file')}: "
                f"{event.get('reason')}"
            )
            if event.get("kind") == "rebuilt":
                with self._lock:
                    self._stats["states_rebuilt"] += 1
                message += "; it was removed and the prefix is evaluated and saved again"
            warnings.warn(message, KVCacheWarning, stacklevel=3)
            log.warning("%s", message)
        return restored + reused

    def cache_stats(self) -> dict[str, Any]:
        """Counters since this manager was built: ``calls``; ``hits`` (calls that restored a
        saved prefix); ``prompt_tokens``; ``restored_tokens`` (from cache files),
        ``reused_tokens`` (whole blocks of the previous prompt still in the worker) and
        ``evaluated_tokens`` (the rest); ``states_saved``; ``states_rebuilt`` (unusable files
        replaced); and the cache folder's ``files`` and ``bytes``
        (:meth:`lightmem_hookspecs.CacheStats.cache_stats`)."""
        with self._lock:
            stats: dict[str, Any] = dict(self._stats)
        stats["kv_cache_dir"] = str(self.kv_cache_dir) if self.kv_cache_dir else None
        if self.kv_cache_dir is not None:
            from .kvcache import cache_bytes

            stats["files"], stats["bytes"] = cache_bytes(self.kv_cache_dir)
        return stats

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
