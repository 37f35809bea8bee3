"""A scripted memory manager: the reference LLM of the testing kit (no plugin, no server).

:class:`ScriptedMemoryManager` implements the ``MemoryManager`` protocol in process. Each
``complete`` call is recorded (:attr:`ScriptedMemoryManager.requests`) as the OpenAI-style
chat-completions body the call describes (``model``, ``messages``, ``max_tokens`` and, when a
JSON schema is asked for, ``response_format: {"type": "json_schema", "json_schema": {"name",
"schema"}}``), so a responder written for the loopback server reads it the same way. It answers
from a script: first the queued items (:meth:`queue`: answer strings, :class:`Reply` or
:class:`Fault` objects), then the ``responder`` callable ``(request_json) -> str | Reply``, then
an echo of the last user message.

Token counts are the LLM layer's own (:func:`lightmem_core.llm.tokens.prompt_tokens`: tiktoken's
cl100k when installed, else four characters per token), so what a real run books and what a dry
run estimates can be compared exactly. ``max_tokens`` is honoured: a longer answer is cut and
reported with ``finish_reason: "length"``. A transport fault (an HTTP error, a time-out, a
dropped connection, a malformed body) is raised as the ``RuntimeError`` a backend raises once its
retries are spent; ``Fault.truncated`` and ``Fault.cut`` answer with ``finish_reason: "length"``.

Register it on a host with ``ReferencePlugin(memory_manager=scripted)`` and select
``memory_manager: {"model_name": "scripted"}``; the core's tests get one as the ``llm`` fixture.
"""

from __future__ import annotations

import random
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs
from lightmem_hookspecs import Completion

from ..llm.tokens import count_text_tokens, prompt_tokens
from .openai_server import Fault, Reply

__all__ = ["Fault", "Reply", "ScriptedMemoryManager", "ScriptedOptions", "ScriptedRequest"]

DEFAULT_MODEL = "lightmem-scripted"

Responder = Callable[[dict[str, Any]], "str | Reply | Fault"]


@attrs.frozen
class ScriptedOptions:
    """The ``scripted`` backend's options: ``max_tokens``, the answer limit of a call that
    gives none (``None``: no limit)."""

    max_tokens: int | None = None


@attrs.define
class ScriptedRequest:
    """One ``complete`` call: ``json`` is the chat-completions body it describes; ``outcome`` is
    ``"200"`` for an answer or the fault's kind; ``prompt_tokens`` what the call booked."""

    json: dict[str, Any]
    outcome: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.json["messages"])

    @property
    def response_format(self) -> Any:
        return self.json.get("response_format")

    @property
    def json_schema(self) -> Mapping[str, Any] | None:
        fmt = self.response_format
        return fmt["json_schema"]["schema"] if fmt else None

    @property
    def max_tokens(self) -> int | None:
        return self.json.get("max_tokens")


def _schema_name(schema: Mapping[str, Any]) -> str:
    name = "".join(c if c.isalnum() or c in "_-" else "_" for c in str(schema.get("title", "")))
    return (name or "lightmem_output")[:64]


def _echo(body: Mapping[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if isinstance(message, Mapping) and message.get("role") == "user":
            return str(message.get("content") or "")
    return "ok"


class ScriptedMemoryManager:
    """A memory manager answering from a script and recording every request (module docs).

    :param responses: items queued before the first call (see :meth:`queue`).
    :param responder: answers a call when the queue is empty, ``(request_json) -> str | Reply``.
    :param model_name: the model name it reports.
    :param max_tokens: the answer limit used when a call gives none (``None``: no limit).
    """

    def __init__(
        self,
        *,
        responses: Iterable[str | Reply | Fault] = (),
        responder: Responder | None = None,
        model_name: str = DEFAULT_MODEL,
        max_tokens: int | None = None,
    ) -> None:
        self.model_name = model_name
        self.responder = responder
        self.options = ScriptedOptions(max_tokens=max_tokens)
        self.requests: list[ScriptedRequest] = []
        self._script: deque[str | Reply | Fault] = deque(responses)
        self._failure_rate = 0.0
        self._failure_faults: list[Fault] = [Fault.http_error(500)]
        self._rng = random.Random(0)
        self._lock = threading.Lock()
        self.closes = 0

    @property
    def max_tokens(self) -> int | None:
        """The answer limit of a call that gives none (``AnswerLimit``)."""
        return self.options.max_tokens

    # -- script -------------------------------------------------------------------------------

    def queue(self, *items: str | Reply | Fault) -> None:
        """Queue answers and faults; each call consumes one item, in order."""
        with self._lock:
            self._script.extend(items)

    def fail_rate(
        self,
        rate: float,
        *,
        seed: int = 0,
        fault: Fault | None = None,
        faults: Iterable[Fault] = (),
    ) -> None:
        """Make each call fail with probability ``rate`` (seeded); a failed call consumes no
        queued item. ``fault`` defaults to HTTP 500; with ``faults`` one of them, drawn."""
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"fail_rate: rate must be within [0, 1], got {rate}")
        with self._lock:
            self._failure_rate = rate
            self._rng = random.Random(seed)
            self._failure_faults = list(faults) or [fault or Fault.http_error(500)]

    def reset(self) -> None:
        """Forget recorded requests, the queue, the failure mode and the responder."""
        with self._lock:
            self.requests.clear()
            self._script.clear()
            self._failure_rate = 0.0
            self.responder = None

    @property
    def chat_requests(self) -> list[ScriptedRequest]:
        """The recorded calls, in order (the loopback server's name for them)."""
        with self._lock:
            return list(self.requests)

    @property
    def pending(self) -> int:
        """How many queued items are left."""
        with self._lock:
            return len(self._script)

    # -- the protocol -------------------------------------------------------------------------

    def complete(
        self,
        messages: Sequence[Mapping[str, str]],
        *,
        json_schema: Mapping[str, Any] | None = None,
        max_tokens: int | None = None,
    ) -> Completion:
        body: dict[str, Any] = {
            "model": self.model_name,
            "messages": [dict(m) for m in messages],
        }
        limit = max_tokens if max_tokens is not None else self.options.max_tokens
        if limit is not None:
            body["max_tokens"] = limit
        if json_schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": _schema_name(json_schema), "schema": dict(json_schema)},
            }
        request = ScriptedRequest(json=body)
        with self._lock:
            self.requests.append(request)
        item = self._next_item(body)
        if isinstance(item, Fault):
            reply = self._fault(item, request, body)
        else:
            reply = item if isinstance(item, Reply) else Reply(str(item))
            request.outcome = "200"
        return self._answer(request, reply, json_schema, limit)

    def close(self) -> None:
        """Counted in :attr:`closes`; a closed manager still answers (one instance may serve
        several memories in a test)."""
        self.closes += 1

    def __repr__(self) -> str:
        return f"ScriptedMemoryManager({self.model_name!r}, {len(self.requests)} requests)"

    # -- internals ----------------------------------------------------------------------------

    def _next_item(self, body: dict[str, Any], *, faults: bool = True) -> str | Reply | Fault:
        with self._lock:
            if faults and self._failure_rate and self._rng.random() < self._failure_rate:
                return self._rng.choice(self._failure_faults)
            if self._script:
                return self._script.popleft()
            responder = self.responder
        if responder is not None:
            return responder(body)
        return _echo(body)

    def _fault(self, fault: Fault, request: ScriptedRequest, body: dict[str, Any]) -> Reply:
        request.outcome = fault.kind if fault.kind != "status" else str(fault.status)
        if fault.kind == "truncated":
            return Reply(fault.text, finish_reason="length")
        if fault.kind == "cut":
            item = self._next_item(body, faults=False)
            full = item.text if isinstance(item, Reply) else str(item)
            return Reply(full[: int(len(full) * fault.fraction)], finish_reason="length")
        what = {
            "status": f"HTTP {fault.status}: {fault.message}",
            "timeout": "the request timed out",
            "malformed": "malformed JSON in the response body",
            "disconnect": "the server closed the connection",
        }.get(fault.kind, fault.kind)
        raise RuntimeError(f"memory_manager 'scripted' (model {self.model_name!r}): {what}")

    def _answer(
        self,
        request: ScriptedRequest,
        reply: Reply,
        json_schema: Mapping[str, Any] | None,
        limit: int | None,
    ) -> Completion:
        text, finish_reason = reply.text, reply.finish_reason
        if limit is not None and limit > 0 and count_text_tokens(text) > limit:
            text, finish_reason = _cut(text, limit), "length"
        prompt = reply.prompt_tokens
        if prompt is None:
            prompt = prompt_tokens(request.messages, json_schema)
        completion = reply.completion_tokens
        if completion is None:
            completion = count_text_tokens(text)
        if reply.omit_usage:
            prompt = completion = 0
        request.prompt_tokens, request.completion_tokens = prompt, completion
        return Completion(
            text=text,
            prompt_tokens=prompt,
            completion_tokens=completion,
            model=self.model_name,
            finish_reason=finish_reason,
        )


def _cut(text: str, limit: int) -> str:
    """The longest prefix of ``text`` within ``limit`` tokens."""
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count_text_tokens(text[:mid]) <= limit:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo]
