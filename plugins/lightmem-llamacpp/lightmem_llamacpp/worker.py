"""The model worker: a separate process that loads the GGUF model and answers completions.

Run as ``python -m lightmem_llamacpp.worker`` by :class:`~lightmem_llamacpp.process.Worker`;
never imported by the application's process. It speaks JSON lines over its standard streams:

1. the host writes one ``load`` message: ``{"op": "load", "engine": "llama_cpp",
   "model_path": ..., "options": {...}}``;
2. the worker answers ``{"event": "ready", "runtime": ...}`` once the model is loaded, or
   ``{"event": "error", "message": ...}`` and exits 1;
3. then, for each request line ``{"id": N, "op": "complete", "messages": [...],
   "json_schema": {...} | null, "max_tokens": N}`` it writes one reply line
   ``{"id": N, "ok": true, "text": ..., "prompt_tokens": N, "completion_tokens": N,
   "finish_reason": ..., "cache": {"reused_tokens": N, "restored_tokens": N,
   "evaluated_tokens": N, "saved": bool, "events": [...]}}`` or ``{"id": N, "ok": false,
   "kind": "too_long" | "error", "message": ...}``;
4. end of its standard input (the host closed the pipe, or died) ends the worker.

The protocol owns file descriptor 1; anything native code prints to "stdout" goes to stderr,
which the host keeps the tail of for error messages. The worker also exits when its parent
dies: ``PR_SET_PDEATHSIG`` on Linux (set by the host at spawn) plus a watchdog thread that
notices the parent process id changing, so no orphan outlives the application.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, Protocol

from .errors import PromptTooLong


class Engine(Protocol):
    runtime: str

    def complete(
        self, messages: list[dict[str, str]], json_schema: dict | None, max_tokens: int
    ) -> dict[str, Any]: ...


class LlamaCppEngine:
    """llama.cpp through the ``llama_cpp`` module (llama-cpp-python or a prebuilt build of it)."""

    def __init__(self, model_path: str, options: dict[str, Any]) -> None:
        try:
            import llama_cpp
        except ImportError as exc:
            raise RuntimeError(
                "the llama_cpp module is not installed (install "
                "`pip install './plugins/lightmem-llamacpp[prebuilt]'` from the LightMem "
                f"checkout, or llama-cpp-python; see the plugin's README): {exc}"
            ) from exc
        self.options = options
        kwargs: dict[str, Any] = {
            "model_path": model_path,
            "n_ctx": options["n_ctx"],
            "n_gpu_layers": options["n_gpu_layers"],
            "seed": options["seed"],
            "verbose": options["verbose"],
        }
        if options.get("n_threads") is not None:
            kwargs["n_threads"] = options["n_threads"]
        if options.get("chat_format") is not None:
            kwargs["chat_format"] = options["chat_format"]
        try:
            self.llm = llama_cpp.Llama(**kwargs)
        except (ValueError, RuntimeError) as exc:
            raise RuntimeError(
                f"could not load the model ({exc}); check that it is a GGUF model file this "
                f"llama.cpp build ({llama_cpp.__version__}) reads"
            ) from exc
        self.runtime = f"llama_cpp {llama_cpp.__version__}"
        from .kvcache import PrefixCache

        folder = options.get("kv_cache_dir") if options.get("kv_cache") else None
        self.cache = PrefixCache(
            self.llm,
            block=int(options.get("kv_cache_block") or 64),
            folder=Path(folder) if folder else None,
            model_path=Path(model_path),
            max_bytes=int(options.get("kv_cache_max_mb") or 1024) << 20,
            runtime=self.runtime,
            n_ctx=int(options["n_ctx"]),
        )
        self._last: dict[str, Any] = {}
        generate = self.llm.generate

        def prepared_generate(tokens: Any, *args: Any, **kwargs: Any) -> Any:
            # the prompt's whole blocks are evaluated (or restored) first; generate then
            # finds them in the state and evaluates only the rest
            self._last = self.cache.prepare(list(tokens))
            return generate(tokens, *args, **kwargs)

        self.llm.generate = prepared_generate

    def complete(
        self, messages: list[dict[str, str]], json_schema: dict | None, max_tokens: int
    ) -> dict[str, Any]:
        o = self.options
        prompt_tokens = sum(
            len(self.llm.tokenize(str(m["content"]).encode("utf-8"), add_bos=False))
            for m in messages
        )
        if prompt_tokens >= o["n_ctx"]:
            raise PromptTooLong(f"the prompt has about {prompt_tokens} tokens")
        request: dict[str, Any] = {
            "messages": messages,
            "temperature": o["temperature"],
            "top_p": o["top_p"],
            "top_k": o["top_k"],
            "repeat_penalty": o["repeat_penalty"],
            "seed": o["seed"],
            "max_tokens": max_tokens,
        }
        if json_schema is not None:
            request["response_format"] = {"type": "json_object", "schema": json_schema}
        try:
            result: Any = self.llm.create_chat_completion(**request)
        except ValueError as exc:
            raise PromptTooLong(str(exc)) from exc
        choice = result["choices"][0]
        usage = result.get("usage") or {}
        events, self.cache.events = self.cache.events, []
        return {
            "text": choice["message"].get("content") or "",
            "prompt_tokens": int(usage.get("prompt_tokens", 0)),
            "completion_tokens": int(usage.get("completion_tokens", 0)),
            "finish_reason": choice.get("finish_reason"),
            "cache": {**self._last, "events": events},
        }


def _engine(message: dict[str, Any]) -> Engine:
    name = message.get("engine", "llama_cpp")
    if name == "llama_cpp":
        return LlamaCppEngine(message["model_path"], message["options"])
    if name == "standin":
        from .standin import StandInEngine

        return StandInEngine(message["model_path"], message["options"])
    raise RuntimeError(f"unknown engine {name!r}")


def _watch_parent(parent: int) -> None:
    """Exit as soon as the process that started this worker is gone."""
    while True:
        if os.getppid() != parent:
            os._exit(3)
        time.sleep(0.5)


def serve(requests: Any, send: Any) -> int:
    """Load the engine from the first message, then answer requests until end of input."""
    first = requests.readline()
    if not first:
        return 0
    try:
        load = json.loads(first)
        engine = _engine(load)
    except Exception as exc:
        send({"event": "error", "message": f"{type(exc).__name__}: {exc}"})
        return 1
    send({"event": "ready", "runtime": engine.runtime, "pid": os.getpid()})
    for line in requests:
        if not line.strip():
            continue
        request = json.loads(line)
        rid = request.get("id")
        try:
            if request.get("op") != "complete":
                raise RuntimeError(f"unknown op {request.get('op')!r}")
            answer = engine.complete(
                request["messages"], request.get("json_schema"), int(request["max_tokens"])
            )
        except PromptTooLong as exc:
            send({"id": rid, "ok": False, "kind": "too_long", "message": str(exc)})
        except Exception as exc:
            send(
                {"id": rid, "ok": False, "kind": "error", "message": f"{type(exc).__name__}: {exc}"}
            )
        else:
            send({"id": rid, "ok": True, **answer})
    return 0


def main() -> int:
    parent = int(os.environ.get("LIGHTMEM_WORKER_PARENT", os.getppid()))
    if os.getppid() != parent:  # the parent died before we got here
        return 3
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    # fd 1 carries the protocol; native code that prints to stdout writes to stderr instead.
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    lock = threading.Lock()

    def send(message: dict[str, Any]) -> None:
        with lock:
            protocol.write(json.dumps(message) + "\n")
            protocol.flush()

    try:
        return serve(sys.stdin, send)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    # Run the imported module's main, so the engines' exception classes are this module's.
    from lightmem_llamacpp.worker import main as _main

    sys.exit(_main())
