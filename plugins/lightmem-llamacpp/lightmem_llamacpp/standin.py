"""A stand-in engine for the model worker: same process, same protocol, no llama.cpp.

Selected with ``LlamaCppManager(..., engine="standin")``: the real worker process
(``python -m lightmem_llamacpp.worker``) then answers with this engine instead of loading the
model, so the out-of-process protocol, the worker's lifecycle and every failure path are tested
without the native runtime. It is a test double of the *model*, not of the process.

It reads the "model" file (it must start with the GGUF magic), counts whitespace-separated words
as tokens, refuses prompts of ``n_ctx`` words or more like the real engine, and answers with the
smallest JSON value of the requested schema (strings taken from the last user message, the first
``enum`` value, one item per array). Directives in a message's content drive the failure tests:

- ``[standin:sleep=S]`` — sleep S seconds before answering (a hang, or time to kill the worker);
- ``[standin:signal=NAME]`` — the worker kills itself with signal NAME (``SIGSEGV``, ``SIGILL``);
- ``[standin:exit=N]`` — the worker exits with status N mid-request.
"""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path
from typing import Any

from .errors import PromptTooLong

_DIRECTIVE = re.compile(r"\[standin:(sleep|signal|exit)=([A-Za-z0-9_.]+)\]")


class StandInEngine:
    runtime = "standin"

    def __init__(self, model_path: str, options: dict[str, Any]) -> None:
        with Path(model_path).open("rb") as f:
            if f.read(4) != b"GGUF":
                raise RuntimeError(f"could not load the model ({model_path} is not a GGUF file)")
        self.options = options

    def complete(
        self, messages: list[dict[str, str]], json_schema: dict | None, max_tokens: int
    ) -> dict[str, Any]:
        for message in messages:
            for verb, arg in _DIRECTIVE.findall(message["content"]):
                if verb == "sleep":
                    time.sleep(float(arg))
                elif verb == "signal":
                    os.kill(os.getpid(), getattr(signal, arg))
                    time.sleep(5)  # a handled or blocked signal must not answer quickly
                else:
                    os._exit(int(arg))
        prompt_tokens = sum(len(m["content"].split()) for m in messages)
        if prompt_tokens >= self.options["n_ctx"]:
            raise PromptTooLong(f"the prompt has about {prompt_tokens} tokens")
        users = [m["content"] for m in messages if m["role"] == "user"] or [""]
        said = _DIRECTIVE.sub("", users[-1]).strip() or "nothing"
        if json_schema is None:
            text = f"You said: {said}"
        else:
            import json

            text = json.dumps(_instance(json_schema, said))
        words = text.split()
        finish = "stop"
        if len(words) > max_tokens:
            words, finish = words[:max_tokens], "length"
            text = " ".join(words)
        return {
            "text": text,
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(words),
            "finish_reason": finish,
        }


def _instance(schema: dict[str, Any], said: str) -> Any:
    """The smallest value of ``schema``, strings filled with ``said``."""
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return _instance(schema[key][0], said)
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = kind[0]
    if kind == "object":
        properties = schema.get("properties", {})
        return {name: _instance(sub, said) for name, sub in properties.items()}
    if kind == "array":
        count = max(1, int(schema.get("minItems", 1)))
        if "maxItems" in schema:
            count = min(count, int(schema["maxItems"]))
        return [_instance(schema.get("items", {}), said) for _ in range(count)]
    if kind in ("number", "integer"):
        low = schema.get("minimum", 0)
        high = schema.get("maximum", low + 1)
        value = (low + high) / 2
        return int(value) if kind == "integer" else value
    if kind == "boolean":
        return False
    if kind == "null":
        return None
    return said
