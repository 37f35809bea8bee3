"""The ``llama-cpp`` memory manager: chat completions from a GGUF model loaded in this process."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lightmem_hookspecs import Completion

from .options import LlamaCppOptions


class LlamaCppManager:
    """A :class:`~lightmem_hookspecs.MemoryManager` over ``llama_cpp.Llama``.

    The model loads on the first :meth:`complete` call. With ``json_schema`` the output is
    constrained by a grammar compiled from the schema (llama-cpp's ``response_format``
    ``{"type": "json_object", "schema": ...}``), so it is JSON of that shape unless it is cut
    off at ``max_tokens``. Calls are serialised: one ``Llama`` object is not thread-safe.
    """

    def __init__(self, options: LlamaCppOptions, *, model_path: Path) -> None:
        self.options = options
        self.model_path = Path(model_path)
        self.model_name = self.model_path.stem
        self._llm: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        state = "loaded" if self._llm is not None else "not loaded"
        return (
            f"LlamaCppManager(model={self.model_name!r}, n_ctx={self.options.n_ctx}, "
            f"n_gpu_layers={self.options.n_gpu_layers}, {state})"
        )

    @property
    def loaded(self) -> bool:
        return self._llm is not None

    def _model(self) -> Any:
        if self._llm is None:
            try:
                from llama_cpp import Llama
            except ImportError as exc:
                raise RuntimeError(
                    "memory_manager 'llama-cpp' needs llama-cpp-python: run "
                    "`pip install llama-cpp-python` (it compiles llama.cpp, a few minutes)"
                ) from exc
            o = self.options
            kwargs: dict[str, Any] = {
                "model_path": str(self.model_path),
                "n_ctx": o.n_ctx,
                "n_gpu_layers": o.n_gpu_layers,
                "seed": o.seed,
                "verbose": o.verbose,
            }
            if o.n_threads is not None:
                kwargs["n_threads"] = o.n_threads
            if o.chat_format is not None:
                kwargs["chat_format"] = o.chat_format
            try:
                self._llm = Llama(**kwargs)
            except (ValueError, RuntimeError) as exc:
                raise RuntimeError(
                    f"memory_manager 'llama-cpp': could not load {str(self.model_path)!r} "
                    f"({exc}); check that it is a GGUF model file this llama-cpp-python "
                    "version reads"
                ) from exc
        return self._llm

    def complete(
        self,
        messages: Sequence[Mapping[str, str]],
        *,
        json_schema: Mapping[str, Any] | None = None,
        max_tokens: int | None = None,
    ) -> Completion:
        o = self.options
        request: dict[str, Any] = {
            "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
            "temperature": o.temperature,
            "top_p": o.top_p,
            "top_k": o.top_k,
            "repeat_penalty": o.repeat_penalty,
            "seed": o.seed,
            "max_tokens": max_tokens or o.max_tokens,
        }
        if json_schema is not None:
            request["response_format"] = {"type": "json_object", "schema": dict(json_schema)}
        with self._lock:
            llm = self._model()
            prompt_tokens = sum(
                len(llm.tokenize(str(m["content"]).encode("utf-8"), add_bos=False))
                for m in messages
            )
            if prompt_tokens >= o.n_ctx:
                raise RuntimeError(self._too_long(f"the prompt has about {prompt_tokens} tokens"))
            try:
                result = llm.create_chat_completion(**request)
            except ValueError as exc:
                raise RuntimeError(self._too_long(str(exc))) from exc
        choice = result["choices"][0]
        usage = result.get("usage") or {}
        return Completion(
            text=choice["message"].get("content") or "",
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            model=self.model_name,
            finish_reason=choice.get("finish_reason"),
        )

    def _too_long(self, detail: str) -> str:
        return (
            f"memory_manager 'llama-cpp': generation failed ({detail}); the context window is "
            f"n_ctx={self.options.n_ctx} tokens: raise memory_manager.configs.n_ctx or lower "
            "short_term_buffer_tokens so batches are smaller"
        )

    def close(self) -> None:
        """Free the model; the next call loads it again."""
        with self._lock:
            llm, self._llm = self._llm, None
        if llm is not None:
            close = getattr(llm, "close", None)
            if callable(close):
                close()
