"""Conformance suite for memory managers (LLM backends): subclass it in your plugin's tests.

The subclass provides a ``backend`` fixture returning a ready memory manager. Backends that talk
HTTP also provide a ``server`` fixture: the running
:class:`~lightmem_core.testing.openai_server.OpenAICompatibleServer` the backend is pointed at
(with ``max_retries`` set to :attr:`MemoryManagerConformance.max_retries` and short back-off),
which lets the suite check request shapes and fault handling. Without ``server``, those tests
are skipped and the rest run against the real model.

Class attributes a subclass may set:

- ``supports_json_schema`` — the backend constrains output when given ``json_schema``.
- ``max_retries`` — the retry bound the ``backend`` fixture was configured with; the suite
  checks that a failing endpoint sees exactly ``1 + max_retries`` requests.

The optional KV-cache capabilities are checked where the backend offers them (skipped
otherwise): :class:`~lightmem_hookspecs.SchemaInPrompt` (``schema_in_prompt`` is a bool; where
it is ``True`` and a ``server`` is given, the ``json_schema`` reaches the endpoint as given) and
:class:`~lightmem_hookspecs.CacheStats` (``cache_stats()`` is a JSON-serialisable mapping,
before the first completion too, and reading it changes nothing).
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import pytest
from lightmem_hookspecs import AnswerLimit, CacheStats, Completion, MemoryManager, SchemaInPrompt

from ..openai_server import Fault, OpenAICompatibleServer
from .capabilities import CloseableChecks, require

SCHEMA: dict[str, Any] = {
    "title": "facts",
    "type": "object",
    "properties": {"facts": {"type": "array", "items": {"type": "string"}}},
    "required": ["facts"],
    "additionalProperties": False,
}

PROMPT = [
    {"role": "system", "content": "You extract facts. Answer in JSON."},
    {"role": "user", "content": "I adopted a dog named Rex last Sunday."},
]


class MemoryManagerConformance(CloseableChecks):
    """Behaviour every :class:`~lightmem_hookspecs.MemoryManager` backend must show."""

    supports_json_schema: ClassVar[bool] = False
    max_retries: ClassVar[int | None] = None

    @pytest.fixture
    def conformance_server(self, request: pytest.FixtureRequest) -> OpenAICompatibleServer | None:
        """The subclass's ``server`` fixture, or ``None`` when it has none."""
        try:
            return request.getfixturevalue("server")
        except pytest.FixtureLookupError:
            return None

    def _needs_server(self, server: OpenAICompatibleServer | None) -> OpenAICompatibleServer:
        if server is None:
            pytest.skip(
                "the backend is not served by an OpenAICompatibleServer (no server fixture)"
            )
        return server

    # -- protocol ---------------------------------------------------------------------------

    def test_is_a_memory_manager(self, backend: Any) -> None:
        assert isinstance(backend, MemoryManager)
        assert isinstance(backend.model_name, str) and backend.model_name

    def test_repr_is_short_and_safe(self, backend: Any) -> None:
        text = repr(backend)
        assert len(text) < 400
        assert "Bearer" not in text

    # -- completions ------------------------------------------------------------------------

    def test_complete_returns_text_and_token_counts(self, backend: Any, conformance_server) -> None:
        if conformance_server is not None:
            conformance_server.queue("Rex is the user's dog.")
        result = backend.complete(PROMPT)
        assert isinstance(result, Completion)
        assert isinstance(result.text, str) and result.text.strip()
        assert isinstance(result.prompt_tokens, int) and result.prompt_tokens > 0
        assert isinstance(result.completion_tokens, int) and result.completion_tokens > 0
        assert isinstance(result.model, str)
        if conformance_server is not None:
            assert result.text == "Rex is the user's dog."
            sent = conformance_server.chat_requests[-1].json
            assert sent["messages"] == PROMPT

    def test_max_tokens_is_passed_and_truncation_reported(
        self, backend: Any, conformance_server
    ) -> None:
        server = self._needs_server(conformance_server)
        server.queue("word " * 200)
        result = backend.complete(PROMPT, max_tokens=8)
        sent = server.chat_requests[-1].json
        assert sent.get("max_tokens", sent.get("max_completion_tokens")) == 8
        assert result.finish_reason == "length"
        assert result.completion_tokens <= 8

    def test_json_schema_is_requested(self, backend: Any, conformance_server) -> None:
        if not self.supports_json_schema:
            pytest.skip("the subclass says the backend does not support json_schema")
        if conformance_server is None:
            result = backend.complete(PROMPT, json_schema=SCHEMA)
            assert isinstance(json.loads(result.text), dict)
            return
        conformance_server.queue('{"facts": ["The user adopted a dog named Rex."]}')
        result = backend.complete(PROMPT, json_schema=SCHEMA)
        assert json.loads(result.text) == {"facts": ["The user adopted a dog named Rex."]}
        response_format = conformance_server.chat_requests[-1].response_format
        assert response_format is not None, "json_schema given but no response_format sent"
        assert response_format["type"] in ("json_schema", "json_object")
        if response_format["type"] == "json_schema":
            assert response_format["json_schema"]["schema"] == SCHEMA

    def test_no_response_format_without_schema(self, backend: Any, conformance_server) -> None:
        server = self._needs_server(conformance_server)
        backend.complete(PROMPT)
        assert server.chat_requests[-1].response_format is None

    # -- failures ---------------------------------------------------------------------------

    def test_transient_failure_is_retried(self, backend: Any, conformance_server) -> None:
        server = self._needs_server(conformance_server)
        if not self.max_retries:
            pytest.skip("max_retries is 0 or not declared by the subclass")
        server.queue(Fault.http_error(503), "recovered")
        assert backend.complete(PROMPT).text == "recovered"
        assert [r.outcome for r in server.chat_requests] == ["503", "200"]

    def test_raises_clear_error_after_bounded_retries(
        self, backend: Any, conformance_server
    ) -> None:
        server = self._needs_server(conformance_server)
        server.fail_rate(1.0, fault=Fault.http_error(500, "the model is on fire"))
        with pytest.raises(Exception) as info:
            backend.complete(PROMPT)
        message = str(info.value)
        assert "500" in message, f"the error should name the HTTP status: {message}"
        if self.max_retries is not None:
            assert len(server.chat_requests) == 1 + self.max_retries

    # -- the optional KV-cache capabilities (``SchemaInPrompt``, ``CacheStats``) -------------

    def test_schema_in_prompt_is_declared_as_a_bool(self, backend: Any, conformance_server) -> None:
        require(backend, SchemaInPrompt, "the backend does not declare schema_in_prompt")
        assert isinstance(backend.schema_in_prompt, bool)
        if not backend.schema_in_prompt or conformance_server is None:
            return
        conformance_server.queue('{"facts": []}')
        backend.complete(PROMPT, json_schema=SCHEMA)
        response_format = conformance_server.chat_requests[-1].response_format
        assert response_format is not None, "schema_in_prompt, yet the schema was not sent"
        if response_format["type"] == "json_schema":
            assert response_format["json_schema"]["schema"] == SCHEMA

    def test_the_declared_answer_limit_is_what_a_call_without_one_sends(
        self, backend: Any, conformance_server
    ) -> None:
        require(backend, AnswerLimit, "the backend does not declare max_tokens")
        limit = backend.max_tokens
        assert limit is None or (
            isinstance(limit, int) and not isinstance(limit, bool) and limit > 0
        ), f"max_tokens must be a positive int or None, not {limit!r}"
        if conformance_server is None or limit is None:
            return
        conformance_server.queue("Rex is the user's dog.")
        backend.complete(PROMPT)
        body = conformance_server.chat_requests[-1].json
        sent = body.get("max_completion_tokens") or body.get("max_tokens")
        assert sent == limit, f"it declares max_tokens {limit} but sent {sent}"

    def test_cache_stats_are_a_json_mapping_read_without_change(
        self, backend: Any, conformance_server
    ) -> None:
        require(backend, CacheStats, "the backend does not offer cache_stats")
        first = backend.cache_stats()
        assert isinstance(first, dict)
        json.dumps(first)  # it is shown in stats()["kv_cache"]
        if conformance_server is not None:
            conformance_server.queue("Rex is the user's dog.")
        backend.complete(PROMPT)
        after = backend.cache_stats()
        assert isinstance(after, dict)
        assert json.loads(json.dumps(after)) == after, "cache_stats must be JSON values"
        assert backend.cache_stats() == after, "reading cache_stats changed them"
