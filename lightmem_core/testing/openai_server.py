"""A loopback HTTP server speaking the OpenAI chat-completions protocol, for testing LLM backends.

It is a real server (stdlib ``http.server`` on 127.0.0.1, an ephemeral port, one background
thread per connection), so a backend under test goes through its real HTTP client: headers,
JSON encoding, status codes, time-outs and retries are all exercised.

What it does:

- ``POST /v1/chat/completions`` (non-streaming) answers from a script: first the queued items
  (:meth:`OpenAICompatibleServer.queue`: answer strings, :class:`Reply` objects or
  :class:`Fault` objects), then the ``responder`` callable ``(request_json) -> str``, then an
  echo of the last user message.
- ``GET /v1/models`` lists :attr:`OpenAICompatibleServer.models`.
- Every request is recorded (:attr:`OpenAICompatibleServer.requests`): method, path, headers
  (including ``Authorization``), raw body and parsed JSON.
- ``response_format`` is recorded, not enforced; formats listed in ``reject_response_formats``
  are refused with HTTP 400 the way OpenAI refuses an unsupported one.
- ``max_tokens`` / ``max_completion_tokens`` is honoured: a longer answer is cut and reported
  with ``finish_reason: "length"``.
- Faults: HTTP errors (500, 503 ...), 429 with ``retry-after``, a delay past the client's
  time-out, a malformed JSON body, a dropped connection, a truncated answer (a given text, or
  the real answer cut short: :meth:`Fault.cut`); and a "fail this fraction of calls" mode
  driven by a seeded RNG, with one fault or a mix of them.

Token counts in ``usage`` are an approximation documented here once: a text counts
``ceil(len(text) / 4)`` tokens (the usual four-characters-per-token rule of thumb, at least 1
for a non-empty text); the prompt count is the sum over the messages' contents plus 4 per
message for the role framing, as OpenAI's counting does.

Prefix caching is played the way vLLM, SGLang or OpenAI report it: every answered request's
prompt is remembered as a token sequence (the ``response_format`` first, then per message 3
framing tokens, its content's tokens and 1 closing token: the same count as above), and
``usage.prompt_tokens_details.cached_tokens`` is the longest common prefix, in tokens, with an
earlier request to the same model, rounded down to ``prefix_cache_block`` and leaving at least
one token to evaluate. A request whose ``response_format`` differs shares nothing. Content is
cut into 4-character tokens unless a ``tokenize`` callable is given (e.g. a real tokenizer's
``encode``).

The server is bounded: it binds to loopback only, sleeps of the time-out fault end as soon as
the server stops, and :meth:`OpenAICompatibleServer.stop` (or leaving the ``with`` block) shuts
it down and joins its thread.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs

__all__ = [
    "DEFAULT_MODEL",
    "Fault",
    "OpenAICompatibleServer",
    "RecordedRequest",
    "Reply",
    "count_tokens",
]

DEFAULT_MODEL = "lightmem-test-model"

#: Tokens added per chat message for the role framing (OpenAI's counting adds about as many).
TOKENS_PER_MESSAGE = 4
#: Earlier prompts the prefix cache remembers.
PREFIX_CACHE_PROMPTS = 1024


def count_tokens(text: str) -> int:
    """Approximate token count: ``ceil(len(text) / 4)``, at least 1 for a non-empty text."""
    if not text:
        return 0
    return max(1, math.ceil(len(text) / 4))


def _message_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # multi-part content: count the text parts
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
    return "" if content is None else str(content)


@attrs.frozen
class Reply:
    """A scripted successful answer. ``usage`` overrides the computed token counts."""

    text: str
    finish_reason: str = "stop"
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    omit_usage: bool = False
    cached_tokens: int | None = None


@attrs.frozen
class Fault:
    """A scripted failure. Build one with the class methods, e.g. ``Fault.http_error(500)``."""

    kind: str  # "status" | "timeout" | "malformed" | "disconnect" | "truncated" | "cut"
    status: int = 500
    message: str = "scripted failure"
    retry_after: float | None = None
    delay: float = 0.0
    text: str = ""
    fraction: float = 0.5

    @classmethod
    def http_error(cls, status: int = 500, message: str = "internal server error") -> Fault:
        """Answer with HTTP ``status`` and an OpenAI-style error body."""
        return cls("status", status=status, message=message)

    @classmethod
    def rate_limit(cls, retry_after: float | None = 1.0, message: str = "rate limited") -> Fault:
        """Answer 429, with a ``retry-after`` header (seconds) unless ``retry_after`` is None."""
        return cls("status", status=429, message=message, retry_after=retry_after)

    @classmethod
    def bad_request(cls, message: str = "invalid request") -> Fault:
        """Answer 400 (``invalid_request_error``)."""
        return cls("status", status=400, message=message)

    @classmethod
    def timeout(cls, delay: float = 2.0) -> Fault:
        """Wait ``delay`` seconds (longer than the client's time-out) before answering."""
        return cls("timeout", delay=delay)

    @classmethod
    def malformed_json(cls) -> Fault:
        """Answer 200 with ``content-type: application/json`` and a body cut mid-object."""
        return cls("malformed")

    @classmethod
    def disconnect(cls) -> Fault:
        """Close the connection without sending a response."""
        return cls("disconnect")

    @classmethod
    def truncated(cls, text: str = '{"facts": ["the user li') -> Fault:
        """Answer 200 with ``text`` and ``finish_reason: "length"`` (output cut at the limit)."""
        return cls("truncated", text=text)

    @classmethod
    def cut(cls, fraction: float = 0.5) -> Fault:
        """Answer 200 with the first ``fraction`` of the answer the server would have given
        (queue, responder or echo) and ``finish_reason: "length"``: a real answer cut short."""
        if not 0.0 <= fraction < 1.0:
            raise ValueError(f"cut: fraction must be within [0, 1), got {fraction}")
        return cls("cut", fraction=fraction)


@attrs.define
class RecordedRequest:
    """One request as the server saw it. ``headers`` keys are lower-case."""

    method: str
    path: str
    headers: dict[str, str]
    raw: bytes
    json: Any = None
    outcome: str = ""

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")

    @property
    def response_format(self) -> Any:
        return self.json.get("response_format") if isinstance(self.json, dict) else None


Responder = Callable[[dict[str, Any]], "str | Reply | Fault"]


class OpenAICompatibleServer:
    """An OpenAI-compatible chat-completions server on ``127.0.0.1``, for tests.

    Use it as a context manager (``with OpenAICompatibleServer() as srv: srv.base_url``) or
    through the ``openai_server`` pytest fixture.

    :param responses: items queued before start (see :meth:`queue`).
    :param responder: answers a request when the queue is empty, ``(request_json) -> str``
        (or a :class:`Reply` / :class:`Fault`).
    :param api_key: when set, requests without ``Authorization: Bearer <api_key>`` get 401.
    :param models: the model ids ``GET /v1/models`` lists.
    :param reject_response_formats: ``response_format`` types refused with HTTP 400, e.g.
        ``{"json_schema"}`` to play an endpoint without structured output.
    :param ssl_context: serve HTTPS with this server-side context.
    :param prefix_cache: report ``usage.prompt_tokens_details.cached_tokens`` (see the module
        docstring); :attr:`cached_tokens` lists what each answered request got.
    :param prefix_cache_block: cached counts are multiples of this many tokens (vLLM caches
        whole blocks of 16; 1: exact).
    :param tokenize: cuts a message's content into tokens for the prefix cache (default:
        4-character pieces).
    """

    def __init__(
        self,
        *,
        responses: Iterable[str | Reply | Fault] = (),
        responder: Responder | None = None,
        api_key: str | None = None,
        models: Iterable[str] = (DEFAULT_MODEL,),
        reject_response_formats: Iterable[str] = (),
        ssl_context: ssl.SSLContext | None = None,
        prefix_cache: bool = True,
        prefix_cache_block: int = 1,
        tokenize: Callable[[str], Iterable[Any]] | None = None,
    ) -> None:
        if prefix_cache_block < 1:
            raise ValueError(f"prefix_cache_block must be >= 1, got {prefix_cache_block}")
        self.prefix_cache = prefix_cache
        self.prefix_cache_block = prefix_cache_block
        self.tokenize = tokenize
        #: ``cached_tokens`` reported for each answered chat request, in answer order.
        self.cached_tokens: list[int] = []
        self._prefixes: deque[tuple[Any, ...]] = deque(maxlen=PREFIX_CACHE_PROMPTS)
        self.responder = responder
        self.api_key = api_key
        self.models = list(models)
        self.reject_response_formats = set(reject_response_formats)
        self.ssl_context = ssl_context
        self.requests: list[RecordedRequest] = []
        self.errors: list[str] = []
        self._script: deque[str | Reply | Fault] = deque(responses)
        self._failure_rate = 0.0
        self._failure_faults: list[Fault] = [Fault.http_error(500)]
        self._rng = random.Random(0)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._counter = 0
        self._connections: set[socket.socket] = set()

    # -- script -------------------------------------------------------------------------------

    def queue(self, *items: str | Reply | Fault) -> None:
        """Queue answers and faults; each chat request consumes one item, in order."""
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
        """Make each chat request fail with probability ``rate`` (seeded, reproducible).

        A failed request does not consume a queued item. ``fault`` defaults to HTTP 500; with
        ``faults`` each failure is one of them, drawn by the same seeded generator.
        """
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"fail_rate: rate must be within [0, 1], got {rate}")
        with self._lock:
            self._failure_rate = rate
            self._rng = random.Random(seed)
            self._failure_faults = list(faults) or [fault or Fault.http_error(500)]

    def reset(self) -> None:
        """Forget recorded requests, the queue, the failure mode and rejected formats."""
        with self._lock:
            self.requests.clear()
            self.errors.clear()
            self._script.clear()
            self._failure_rate = 0.0
            self.reject_response_formats.clear()
            self.responder = None
            self.cached_tokens.clear()
            self._prefixes.clear()

    def prompt_token_sequence(self, body: Mapping[str, Any]) -> tuple[Any, ...]:
        """The request's prompt as the prefix cache sees it (see the module docstring)."""
        rf = body.get("response_format")
        head = ("<|format|>", body.get("model"), json.dumps(rf, sort_keys=True))
        tokens: list[Any] = [head]
        for m in body.get("messages") or []:
            if not isinstance(m, Mapping):
                continue
            text = _message_text(m.get("content"))
            tokens += ["<|start|>", str(m.get("role")), "<|content|>"]
            if self.tokenize is not None:
                tokens += list(self.tokenize(text))
            else:
                tokens += [text[i : i + 4] for i in range(0, len(text), 4)]
            tokens.append("<|end|>")
        return tuple(tokens)

    def _cache_prompt(self, body: Mapping[str, Any], prompt_tokens: int) -> int:
        """Cached tokens for this request (then remembered for the next ones)."""
        tokens = self.prompt_token_sequence(body)
        with self._lock:
            best = 0
            for earlier in self._prefixes:
                n = 0
                for a, b in zip(earlier, tokens, strict=False):
                    if a != b:
                        break
                    n += 1
                best = max(best, n)
            self._prefixes.append(tokens)
        cached = max(0, best - 1)  # the format pseudo-token is not a prompt token
        cached = min(cached, len(tokens) - 2, prompt_tokens - 1)
        cached -= cached % self.prefix_cache_block
        return max(0, cached)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        """The recorded ``POST /v1/chat/completions`` requests, in arrival order."""
        with self._lock:
            return [r for r in self.requests if r.path.endswith("/chat/completions")]

    @property
    def pending(self) -> int:
        """How many queued items are left."""
        with self._lock:
            return len(self._script)

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("OpenAICompatibleServer is not running; call start() first")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """The URL to give an OpenAI client, ending in ``/v1``."""
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://127.0.0.1:{self.port}/v1"

    def start(self) -> OpenAICompatibleServer:
        if self._httpd is not None:
            return self
        self._stopping.clear()
        httpd = _Server(("127.0.0.1", 0), _Handler)
        httpd.app = self
        if self.ssl_context is not None:
            httpd.socket = self.ssl_context.wrap_socket(httpd.socket, server_side=True)
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"openai-test-server-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, end pending sleeps, close the socket and join the thread."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:  # end keep-alive connections still waiting for a request
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> OpenAICompatibleServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.base_url if self._httpd is not None else "stopped"
        return f"OpenAICompatibleServer({where}, {len(self.requests)} requests)"

    # -- request handling (called from handler threads) ---------------------------------------

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

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

    def _track(self, connection: socket.socket, *, open_: bool) -> None:
        with self._lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def _next_id(self) -> str:
        with self._lock:
            self._counter += 1
            return f"chatcmpl-test-{self._counter}"

    def _sleep(self, seconds: float) -> None:
        self._stopping.wait(seconds)


def _echo(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if isinstance(message, Mapping) and message.get("role") == "user":
            return _message_text(message.get("content"))
    return "ok"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    app: OpenAICompatibleServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out close the socket while the handler still writes: expected.
        import sys

        exc = sys.exc_info()[1]
        self.app.errors.append(f"{type(exc).__name__}: {exc}")


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "LightMemOpenAITestServer/1.0"
    timeout = 10  # an idle keep-alive connection is closed after this many seconds
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms stalls

    def setup(self) -> None:
        super().setup()
        self.app._track(self.connection, open_=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.app._track(self.connection, open_=False)

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    # -- helpers ------------------------------------------------------------------------------

    @property
    def app(self) -> OpenAICompatibleServer:
        return self.server.app

    def _send_json(
        self, status: int, payload: Any, headers: Mapping[str, str] | None = None
    ) -> None:
        self._send_raw(status, json.dumps(payload).encode(), headers)

    def _send_raw(self, status: int, body: bytes, headers: Mapping[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
        except OSError:  # the client gave up (time-out) and closed the connection
            self.close_connection = True

    def _send_error(
        self,
        status: int,
        message: str,
        *,
        err_type: str = "server_error",
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        body = {"error": {"message": message, "type": err_type, "param": param, "code": None}}
        self._send_json(status, body, headers)

    def _read_request(self) -> RecordedRequest:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        parsed: Any = None
        if raw:
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = None
        headers = {k.lower(): v for k, v in self.headers.items()}
        path = self.path.split("?", 1)[0]
        request = RecordedRequest(self.command, path, headers, raw, parsed)
        self.app._record(request)
        return request

    def _authorized(self, request: RecordedRequest) -> bool:
        key = self.app.api_key
        if key is None or request.authorization == f"Bearer {key}":
            return True
        request.outcome = "401"
        self._send_error(
            401, "Incorrect API key provided.", err_type="invalid_request_error", param=None
        )
        return False

    # -- routes -------------------------------------------------------------------------------

    def do_GET(self) -> None:
        request = self._read_request()
        if not self._authorized(request):
            return
        if request.path.rstrip("/") in ("/v1/models", "/models"):
            request.outcome = "200"
            data = [
                {"id": m, "object": "model", "created": 0, "owned_by": "lightmem-test"}
                for m in self.app.models
            ]
            self._send_json(200, {"object": "list", "data": data})
            return
        request.outcome = "404"
        self._send_error(404, f"no route for GET {request.path}", err_type="not_found_error")

    def do_POST(self) -> None:
        request = self._read_request()
        if not self._authorized(request):
            return
        if request.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
            request.outcome = "404"
            self._send_error(404, f"no route for POST {request.path}", err_type="not_found_error")
            return
        body = request.json
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            request.outcome = "400"
            self._send_error(
                400,
                "the body must be a JSON object with a 'messages' list",
                err_type="invalid_request_error",
                param="messages",
            )
            return
        rf = body.get("response_format")
        rf_type = rf.get("type") if isinstance(rf, Mapping) else None
        if rf_type is not None and rf_type in self.app.reject_response_formats:
            request.outcome = "400"
            self._send_error(
                400,
                f"Invalid parameter: 'response_format' of type '{rf_type}' is not supported "
                "with this model.",
                err_type="invalid_request_error",
                param="response_format",
            )
            return
        item = self.app._next_item(body)
        if isinstance(item, Fault):
            self._fault(item, request, body)
        else:
            reply = item if isinstance(item, Reply) else Reply(str(item))
            request.outcome = "200"
            self._answer(body, reply)

    def _fault(self, fault: Fault, request: RecordedRequest, body: dict[str, Any]) -> None:
        if fault.kind == "status":
            request.outcome = str(fault.status)
            headers = {}
            if fault.retry_after is not None:
                headers["retry-after"] = f"{fault.retry_after:g}"
            err_type = {400: "invalid_request_error", 429: "rate_limit_error"}.get(
                fault.status, "server_error"
            )
            self._send_error(fault.status, fault.message, err_type=err_type, headers=headers)
        elif fault.kind == "timeout":
            request.outcome = "timeout"
            self.app._sleep(fault.delay)
            if not self.app._stopping.is_set():
                self._answer(body, Reply("late answer"))
        elif fault.kind == "malformed":
            request.outcome = "malformed"
            self._send_raw(200, b'{"id": "chatcmpl-broken", "object": "chat.completion", "choi')
        elif fault.kind == "disconnect":
            request.outcome = "disconnect"
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        elif fault.kind == "truncated":
            request.outcome = "200"
            self._answer(body, Reply(fault.text, finish_reason="length"))
        elif fault.kind == "cut":
            request.outcome = "200"
            item = self.app._next_item(body, faults=False)
            full = item.text if isinstance(item, Reply) else str(item)
            kept = full[: int(len(full) * fault.fraction)]
            self._answer(body, Reply(kept, finish_reason="length"))
        else:  # pragma: no cover - Fault is built through its class methods
            raise ValueError(f"unknown fault kind {fault.kind!r}")

    def _answer(self, body: dict[str, Any], reply: Reply) -> None:
        text, finish_reason = reply.text, reply.finish_reason
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        if isinstance(limit, int) and limit > 0 and count_tokens(text) > limit:
            text, finish_reason = text[: limit * 4], "length"
        messages = body.get("messages") or []
        prompt_tokens = reply.prompt_tokens
        if prompt_tokens is None:
            prompt_tokens = sum(
                TOKENS_PER_MESSAGE + count_tokens(_message_text(m.get("content")))
                for m in messages
                if isinstance(m, Mapping)
            )
        completion_tokens = reply.completion_tokens
        if completion_tokens is None:
            completion_tokens = count_tokens(text)
        payload: dict[str, Any] = {
            "id": self.app._next_id(),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model") or DEFAULT_MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": finish_reason,
                    "logprobs": None,
                }
            ],
        }
        if self.app.prefix_cache:
            cached = self.app._cache_prompt(body, prompt_tokens)
            if reply.cached_tokens is not None:
                cached = reply.cached_tokens
            with self.app._lock:
                self.app.cached_tokens.append(cached)
        if not reply.omit_usage:
            payload["usage"] = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            }
            if self.app.prefix_cache:
                payload["usage"]["prompt_tokens_details"] = {"cached_tokens": cached}
        self._send_json(200, payload)
