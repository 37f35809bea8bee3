"""The chat-completions memory manager: one OpenAI client, bounded retries, JSON-mode fallback."""

from __future__ import annotations

import datetime as _dt
import email.utils
import ipaddress
import json
import logging
import math
import os
import random
import ssl
import threading
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

from lightmem_hookspecs import Completion

from .options import LOCAL_MODEL_OPTIONS, OPENAI, OpenAIOptions, ProviderDefaults

log = logging.getLogger("lightmem.openai")

#: Sent as the key to a loopback endpoint when none is configured (such servers ignore it).
PLACEHOLDER_KEY = "sk-no-key-required"

#: ``structured_output`` modes from most to least constrained.
_MODE_ORDER = ("json_schema", "json_object", "none")

#: HTTP statuses worth retrying besides 5xx.
_RETRY_STATUSES = frozenset({408, 409, 429})


class MalformedResponseError(RuntimeError):
    """The endpoint answered 200 with a body that is not a chat completion."""


class _GiveUp(Exception):
    """Internal: stop retrying and raise ``error``."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def is_loopback_url(url: str) -> bool:
    """Whether ``url`` points at this machine (localhost, 127.0.0.0/8, ::1)."""
    host = (urllib.parse.urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_base_url(options: OpenAIOptions, provider: ProviderDefaults) -> str:
    """The endpoint URL: an option, else the provider's environment variable, else its API."""
    names = [provider.base_url_option] + [
        n
        for n in ("openai_base_url", "deepseek_base_url", "vllm_base_url")
        if n != provider.base_url_option
    ]
    given = {n: getattr(options, n) for n in names if getattr(options, n)}
    if len({v.rstrip("/") for v in given.values()}) > 1:
        listed = ", ".join(f"{n}={v!r}" for n, v in given.items())
        raise ValueError(
            f"memory_manager {provider.backend!r}: several different base URLs are configured "
            f"({listed}); keep one of them"
        )
    if given:
        return next(iter(given.values())).rstrip("/")
    for env in provider.base_url_env:
        if os.environ.get(env):
            return os.environ[env].rstrip("/")
    return provider.base_url


def resolve_api_key(options: OpenAIOptions, provider: ProviderDefaults, base_url: str) -> str:
    """The API key: the option, else the named or the provider's environment variable.

    A loopback endpoint runs without one (a placeholder is sent); anything else without a key
    is an error that says which variable or option to set.
    """
    if options.api_key:
        return options.api_key
    env = options.api_key_env or provider.key_env
    if os.environ.get(env):
        return os.environ[env]
    if is_loopback_url(base_url):
        return PLACEHOLDER_KEY
    how = (
        f"set the environment variable {env} (named by api_key_env)"
        if options.api_key_env
        else f"set the environment variable {env}, or the option memory_manager.configs.api_key, "
        "or name another variable with memory_manager.configs.api_key_env"
    )
    raise ValueError(
        f"memory_manager {provider.backend!r}: no API key for {base_url}; {how}. "
        "(A server on localhost/127.0.0.1 needs none; for another server that needs no key, "
        "set api_key to any placeholder.)"
    )


def _response_format(mode: str, schema: Mapping[str, Any]) -> dict[str, Any] | None:
    if mode == "none":
        return None
    if mode == "json_object":
        return {"type": "json_object"}
    if isinstance(schema.get("schema"), Mapping) and "name" in schema:
        wrapped = dict(schema)  # already in OpenAI's {"name", "schema", "strict"?} form
    else:
        name = "".join(c if c.isalnum() or c in "_-" else "_" for c in str(schema.get("title", "")))
        wrapped = {"name": (name or "lightmem_output")[:64], "schema": dict(schema)}
    return {"type": "json_schema", "json_schema": wrapped}


def _retry_after(exc: Exception) -> float | None:
    """Seconds the server asked to wait (``retry-after-ms`` / ``retry-after``), if any."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.UTC)
    return max(0.0, (when - _dt.datetime.now(_dt.UTC)).total_seconds())


def _is_tls_failure(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return True
        if "CERTIFICATE_VERIFY_FAILED" in str(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def _estimate_tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4)) if text else 0


class OpenAIChatManager:
    """A :class:`~lightmem_hookspecs.MemoryManager` over an OpenAI-compatible chat endpoint.

    Transport failures (time-outs, connection errors, HTTP 408/409/429/5xx, a malformed body)
    are retried up to ``max_retries`` times with exponential back-off and jitter, honouring
    ``retry-after``; then a ``RuntimeError`` says what failed. A ``json_schema`` request is sent
    as ``response_format`` json_schema, then json_object, then without one, stepping down when
    the endpoint refuses with HTTP 400; the step that worked is remembered by this instance.

    KV cache: the core lays out every request with its static part first (see
    :mod:`lightmem_core.llm.prompts`) so a server's prefix cache (vLLM, SGLang, OpenAI's prompt
    caching) applies; the cached prompt tokens the server reports
    (``usage.prompt_tokens_details.cached_tokens``) come back as ``Completion.cached_tokens``.
    The schema travels with the prompt (``schema_in_prompt``: the optional
    :class:`~lightmem_hookspecs.SchemaInPrompt`), so with ``kv_cache`` on the core sends one
    schema per request kind.
    """

    #: OpenAI caches ``response_format`` with the prompt: with ``kv_cache`` the core keeps it
    #: the same in every call of one kind.
    schema_in_prompt = True

    @property
    def max_tokens(self) -> int | None:
        """The answer limit sent when a call gives none (the optional
        :class:`~lightmem_hookspecs.AnswerLimit`)."""
        return self.options.max_tokens

    def __init__(self, options: OpenAIOptions, *, provider: ProviderDefaults = OPENAI) -> None:
        import openai

        self.options = options
        self.provider = provider
        self.backend = provider.backend
        self.model_name = options.model or provider.model
        self.base_url = resolve_base_url(options, provider)
        key = resolve_api_key(options, provider, self.base_url)
        self._secret = key if key != PLACEHOLDER_KEY else None
        if self.base_url.startswith("http://") and not is_loopback_url(self.base_url):
            log.warning(
                "memory_manager %r: %s is plain HTTP; the API key travels unencrypted",
                self.backend,
                self.base_url,
            )
        ignored = [n for n in LOCAL_MODEL_OPTIONS if getattr(options, n) is not None]
        if ignored:
            log.warning(
                "memory_manager %r: option(s) %s apply to local models only and are ignored "
                "by this HTTP backend",
                self.backend,
                ", ".join(ignored),
            )
        headers = dict(options.extra_headers)
        if options.site_url:
            headers.setdefault("HTTP-Referer", options.site_url)
        if options.app_name:
            headers.setdefault("X-Title", options.app_name)
        self._openai = openai
        # The client's own retries are off: the loop in _send is the one bounded retry policy.
        self._client = openai.OpenAI(
            api_key=key,
            base_url=self.base_url,
            timeout=options.timeout,
            max_retries=0,
            default_headers=headers or None,
        )
        start = options.structured_output
        self._mode = provider.structured_output if start == "auto" else start
        self._mode_lock = threading.Lock()
        self._random = random.Random()
        self._sleep = time.sleep  # tests swap in a recorder

    # -- public -------------------------------------------------------------------------------

    @property
    def structured_output_mode(self) -> str:
        """How the next ``json_schema`` request is sent: json_schema, json_object or none."""
        return self._mode

    def complete(
        self,
        messages: Sequence[Mapping[str, str]],
        *,
        json_schema: Mapping[str, Any] | None = None,
        max_tokens: int | None = None,
    ) -> Completion:
        """Run one chat completion; see the class docstring for retries and JSON modes."""
        params = self._params(messages, max_tokens)
        if json_schema is None:
            return self._completion(self._send(params), params["messages"])
        start = self._mode
        modes = _MODE_ORDER[_MODE_ORDER.index(start) :]
        for i, mode in enumerate(modes):
            response_format = _response_format(mode, json_schema)
            attempt = dict(params)
            if response_format is not None:
                attempt["response_format"] = response_format
            try:
                response = self._send(attempt, step_down=i + 1 < len(modes))
            except _GiveUp as refused:
                log.info(
                    "memory_manager %r: %s refused response_format %s (%s); trying %s",
                    self.backend,
                    self.base_url,
                    mode,
                    self._describe(refused.error),
                    modes[i + 1],
                )
                continue
            if mode != start:
                with self._mode_lock:
                    self._mode = mode
                log.info(
                    "memory_manager %r: using structured output mode %r for %s from now on",
                    self.backend,
                    mode,
                    self.base_url,
                )
            return self._completion(response, params["messages"])
        raise AssertionError("unreachable: the last mode never steps down")  # pragma: no cover

    def close(self) -> None:
        self._client.close()

    def __repr__(self) -> str:
        return (
            f"OpenAIChatManager(backend={self.backend!r}, model={self.model_name!r}, "
            f"base_url={self.base_url!r})"
        )

    # -- internals ----------------------------------------------------------------------------

    def _params(self, messages: Sequence[Mapping[str, str]], max_tokens: int | None) -> dict:
        checked = []
        for i, message in enumerate(messages):
            if not isinstance(message, Mapping) or "role" not in message:
                raise ValueError(f"messages[{i}]: expected a mapping with 'role' and 'content'")
            if not isinstance(message.get("content"), str):
                raise ValueError(
                    f"messages[{i}]: content must be a string, got "
                    f"{type(message.get('content')).__name__}"
                )
            checked.append(dict(message))
        if not checked:
            raise ValueError("messages: at least one message is required")
        o = self.options
        params: dict[str, Any] = {"model": self.model_name, "messages": checked}
        limit = max_tokens if max_tokens is not None else o.max_tokens
        if limit is not None:
            params[o.token_limit_param] = limit
        if o.temperature is not None:
            params["temperature"] = o.temperature
        if o.top_p is not None:
            params["top_p"] = o.top_p
        if o.seed is not None:
            params["seed"] = o.seed
        if o.stop:
            params["stop"] = list(o.stop)
        extra = dict(o.extra_body)
        if o.top_k is not None:
            extra.setdefault("top_k", o.top_k)
        if extra:
            params["extra_body"] = extra
        return params

    def _send(self, params: dict[str, Any], *, step_down: bool = False) -> Any:
        """POST once, retrying transport failures; ``_GiveUp`` on a 400 when ``step_down``."""
        openai = self._openai
        attempts = 1 + self.options.max_retries
        last: Exception | None = None
        for attempt in range(attempts):
            if attempt:
                delay = self._delay(attempt - 1, last)
                log.warning(
                    "memory_manager %r: %s; retrying in %.2fs (attempt %d of %d)",
                    self.backend,
                    self._describe(last),
                    delay,
                    attempt + 1,
                    attempts,
                )
                self._sleep(delay)
            log.debug(
                "memory_manager %r: POST %s/chat/completions model=%s messages=%d "
                "response_format=%s",
                self.backend,
                self.base_url,
                self.model_name,
                len(params["messages"]),
                (params.get("response_format") or {}).get("type"),
            )
            try:
                response = self._client.chat.completions.create(**params)
                self._check(response)
                return response
            except (openai.BadRequestError, openai.UnprocessableEntityError) as exc:
                if step_down and "response_format" in params:
                    raise _GiveUp(exc) from None
                self._raise(exc, self._hint(exc.status_code))
            except openai.APIStatusError as exc:
                status = exc.status_code
                if status not in _RETRY_STATUSES and status < 500:
                    self._raise(exc, self._hint(status))
                last = exc
            except openai.APIConnectionError as exc:  # includes APITimeoutError
                if _is_tls_failure(exc):
                    self._raise(
                        exc,
                        "TLS certificate verification failed; the server's certificate must "
                        "be trusted by this machine (install its CA, e.g. via SSL_CERT_FILE)",
                    )
                last = exc
            except (json.JSONDecodeError, MalformedResponseError) as exc:
                last = exc
            wait = _retry_after(last) if last is not None else None
            if wait is not None and wait > self.options.retry_after_max:
                self._raise(
                    last,
                    f"the server asked to retry after {wait:g}s, more than retry_after_max="
                    f"{self.options.retry_after_max:g}s",
                )
        self._raise(
            last,
            f"gave up after {attempts} attempt(s) (max_retries={self.options.max_retries})",
        )

    def _delay(self, retry: int, exc: Exception | None) -> float:
        wait = _retry_after(exc) if exc is not None else None
        if wait is not None:
            return wait
        backoff = min(self.options.retry_backoff * 2**retry, self.options.retry_backoff_max)
        return backoff * (0.5 + 0.5 * self._random.random())

    def _check(self, response: Any) -> None:
        choices = getattr(response, "choices", None)
        if isinstance(response, str) or not choices:
            raise MalformedResponseError(
                "the endpoint answered without a chat completion (no 'choices' in the body)"
            )
        if getattr(choices[0], "message", None) is None:
            raise MalformedResponseError("the endpoint answered a choice without a message")

    def _completion(self, response: Any, messages: Sequence[Mapping[str, str]]) -> Completion:
        choice = response.choices[0]
        text = choice.message.content or ""
        usage = getattr(response, "usage", None)
        prompt_tokens = getattr(usage, "prompt_tokens", None)
        completion_tokens = getattr(usage, "completion_tokens", None)
        if prompt_tokens is None or completion_tokens is None:
            # Some local servers omit usage: estimate (4 characters per token) so counters move.
            prompt_tokens = sum(_estimate_tokens(m.get("content") or "") for m in messages)
            completion_tokens = _estimate_tokens(text)
        details = getattr(usage, "prompt_tokens_details", None)
        cached = getattr(details, "cached_tokens", None) if details is not None else None
        finish_reason = getattr(choice, "finish_reason", None)
        if finish_reason == "length":
            log.warning(
                "memory_manager %r: the answer was cut at the token limit (finish_reason "
                "'length'); raise max_tokens if this repeats",
                self.backend,
            )
        return Completion(
            text=text,
            prompt_tokens=int(prompt_tokens or 0),
            completion_tokens=int(completion_tokens or 0),
            model=str(getattr(response, "model", None) or self.model_name),
            finish_reason=finish_reason,
            cached_tokens=min(int(cached or 0), int(prompt_tokens or 0)),
        )

    def _hint(self, status: int) -> str:
        if status in (400, 422):
            return f"the endpoint refused the request (HTTP {status})"
        if status in (401, 403):
            env = self.options.api_key_env or self.provider.key_env
            return (
                f"the endpoint refused the API key (HTTP {status}); check {env} or "
                "memory_manager.configs.api_key"
            )
        if status == 404:
            return (
                f"HTTP 404: check the base URL ({self.base_url}, usually ending in /v1) and "
                f"that the model {self.model_name!r} exists there"
            )
        return f"the endpoint refused the request (HTTP {status})"

    def _describe(self, exc: Exception | None) -> str:
        openai = self._openai
        if isinstance(exc, openai.APITimeoutError):
            return f"no answer within timeout={self.options.timeout:g}s"
        if isinstance(exc, openai.APIStatusError):
            return self._scrub(f"HTTP {exc.status_code}: {exc.message}")
        if isinstance(exc, openai.APIConnectionError):
            return f"cannot connect: {self._scrub(str(exc))}"
        if isinstance(exc, json.JSONDecodeError):
            return f"malformed JSON in the response body ({exc.msg})"
        return self._scrub(f"{type(exc).__name__}: {exc}")

    def _raise(self, exc: Exception | None, what: str) -> NoReturn:
        error = RuntimeError(
            f"memory_manager {self.backend!r} (model {self.model_name!r} at {self.base_url}): "
            f"{what}; last error: {self._describe(exc)}"
        )
        if exc is None or (self._secret and self._secret in f"{exc} {exc!r}"):
            raise error from None  # never chain an exception that carries the key
        raise error from exc

    def _scrub(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text
