"""The loopback OpenAI-compatible test server, spoken to with urllib and the real openai client."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request

import openai
import pytest

from lightmem_core.testing.openai_server import (
    Fault,
    OpenAICompatibleServer,
    Reply,
    count_tokens,
)


def _post(server, body, headers=None, path="/v1/chat/completions"):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(
        server.base_url.removesuffix("/v1") + path,
        data=data,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


CHAT = {"model": "m", "messages": [{"role": "user", "content": "hello world"}]}


def test_count_tokens_rule():
    assert count_tokens("") == 0
    assert count_tokens("a") == 1
    assert count_tokens("abcd") == 1
    assert count_tokens("abcde") == 2


def test_chat_answer_usage_and_recording(openai_server):
    openai_server.queue("scripted")
    status, _headers, raw = _post(openai_server, CHAT, {"Authorization": "Bearer sk-x"})
    assert status == 200
    answer = json.loads(raw)
    assert answer["choices"][0]["message"] == {"role": "assistant", "content": "scripted"}
    assert answer["choices"][0]["finish_reason"] == "stop"
    assert answer["usage"] == {
        "prompt_tokens": 4 + count_tokens("hello world"),
        "completion_tokens": count_tokens("scripted"),
        "total_tokens": 4 + count_tokens("hello world") + count_tokens("scripted"),
        "prompt_tokens_details": {"cached_tokens": 0},
    }
    (request,) = openai_server.requests
    assert request.method == "POST" and request.path == "/v1/chat/completions"
    assert request.authorization == "Bearer sk-x"
    assert request.json == CHAT and request.outcome == "200"


def test_queue_then_responder_then_echo(openai_server):
    openai_server.queue("first", Reply("second", finish_reason="stop"))
    client = openai.OpenAI(api_key="k", base_url=openai_server.base_url, max_retries=0)
    ask = lambda text: (  # noqa: E731
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": text}])
        .choices[0]
        .message.content
    )
    assert ask("a") == "first"
    assert ask("b") == "second"
    assert ask("echo me") == "echo me"
    openai_server.responder = lambda body: f"{len(body['messages'])} message(s)"
    assert ask("c") == "1 message(s)"
    assert openai_server.pending == 0


def test_response_format_is_recorded_or_rejected(openai_server):
    body = {**CHAT, "response_format": {"type": "json_object"}}
    assert _post(openai_server, body)[0] == 200
    assert openai_server.requests[-1].response_format == {"type": "json_object"}
    openai_server.reject_response_formats = {"json_object"}
    status, _headers, raw = _post(openai_server, body)
    assert status == 400
    assert json.loads(raw)["error"]["param"] == "response_format"


def test_models_endpoint(openai_server):
    client = openai.OpenAI(api_key="k", base_url=openai_server.base_url, max_retries=0)
    assert [m.id for m in client.models.list()] == ["lightmem-test-model"]


def test_api_key_check_and_unknown_route(openai_server):
    openai_server.api_key = "sk-right"
    assert _post(openai_server, CHAT, {"Authorization": "Bearer sk-wrong"})[0] == 401
    assert _post(openai_server, CHAT, {"Authorization": "Bearer sk-right"})[0] == 200
    headers = {"Authorization": "Bearer sk-right"}
    assert _post(openai_server, CHAT, headers, path="/v1/embeddings")[0] == 404
    assert _post(openai_server, b"not json", headers)[0] == 400


def test_faults(openai_server):
    openai_server.queue(
        Fault.http_error(503),
        Fault.rate_limit(retry_after=7),
        Fault.malformed_json(),
        Fault.truncated("half an ans"),
    )
    assert _post(openai_server, CHAT)[0] == 503
    status, headers, _raw = _post(openai_server, CHAT)
    assert status == 429 and headers["retry-after"] == "7"
    status, _headers, raw = _post(openai_server, CHAT)
    assert status == 200
    with pytest.raises(ValueError):
        json.loads(raw)
    status, _headers, raw = _post(openai_server, CHAT)
    assert json.loads(raw)["choices"][0]["finish_reason"] == "length"
    assert [r.outcome for r in openai_server.requests] == ["503", "429", "malformed", "200"]


def test_max_tokens_cuts_the_answer(openai_server):
    openai_server.queue("x" * 100)
    _status, _headers, raw = _post(openai_server, {**CHAT, "max_tokens": 3})
    choice = json.loads(raw)["choices"][0]
    assert choice["message"]["content"] == "x" * 12 and choice["finish_reason"] == "length"


def test_fail_rate_is_seeded_and_reproducible():
    def outcomes(seed):
        with OpenAICompatibleServer() as server:
            server.fail_rate(0.3, seed=seed)
            for _ in range(40):
                _post(server, CHAT)
            return [r.outcome for r in server.requests]

    first = outcomes(5)
    assert first == outcomes(5)
    assert 0 < first.count("500") < 40
    with pytest.raises(ValueError):
        OpenAICompatibleServer().fail_rate(1.5)


def test_stop_ends_sleeping_handlers_and_closes_the_port():
    server = OpenAICompatibleServer(responses=[Fault.timeout(delay=60)]).start()
    base = server.base_url
    client = openai.OpenAI(api_key="k", base_url=base, max_retries=0, timeout=0.2)
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    server.stop()
    assert not any(t.name.startswith("openai-test-server") for t in threading.enumerate())
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert "stopped" in repr(server)


def test_reset_clears_script_and_modes(openai_server):
    openai_server.queue("a", "b")
    openai_server.fail_rate(1.0)
    openai_server.reject_response_formats = {"json_object"}
    openai_server.reset()
    assert openai_server.pending == 0 and openai_server.requests == []
    assert _post(openai_server, {**CHAT, "response_format": {"type": "json_object"}})[0] == 200


def test_cut_fault_cuts_the_real_answer_and_mixed_faults_are_seeded(openai_server):
    import httpx

    from lightmem_core.testing.openai_server import Fault

    openai_server.responder = lambda body: "0123456789"
    openai_server.fail_rate(1.0, seed=3, faults=[Fault.cut(0.5)])
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    answer = httpx.post(f"{openai_server.base_url}/chat/completions", json=body).json()
    assert answer["choices"][0]["message"]["content"] == "01234"
    assert answer["choices"][0]["finish_reason"] == "length"
    openai_server.fail_rate(0.5, seed=3, faults=[Fault.http_error(503), Fault.cut(0.2)])
    codes = [
        httpx.post(f"{openai_server.base_url}/chat/completions", json=body).status_code
        for _ in range(40)
    ]
    assert {200, 503} <= set(codes)


SYSTEM = {"role": "system", "content": "You keep memories. " * 10}  # 190 characters


def _cached(server, body):
    status, _headers, raw = _post(server, body)
    assert status == 200
    return json.loads(raw)["usage"]["prompt_tokens_details"]["cached_tokens"]


def test_prefix_cache_reports_the_longest_common_prefix_in_tokens(openai_server):
    first = {"model": "m", "messages": [SYSTEM, {"role": "user", "content": "abcdefgh-one"}]}
    again = {"model": "m", "messages": [SYSTEM, {"role": "user", "content": "abcdefgh-two"}]}
    other = {"model": "m", "messages": [{"role": "system", "content": "Other."}, SYSTEM]}
    assert _cached(openai_server, first) == 0
    # the system message (3 framing + 48 four-character tokens + 1 closing), the user
    # message's framing (3) and its first two tokens ("abcd", "efgh")
    assert _cached(openai_server, again) == 52 + 3 + 2
    assert _cached(openai_server, other) == 3  # the system role's framing only
    assert openai_server.cached_tokens == [0, 57, 3]
    # the same prompt again: all but the last token, which a server always evaluates
    assert _cached(openai_server, first) == 4 + count_tokens(SYSTEM["content"]) + 4 + 3 - 1


def test_prefix_cache_is_per_format_and_model_and_rounds_to_blocks():
    body = {"model": "m", "messages": [SYSTEM, {"role": "user", "content": "x"}]}
    with OpenAICompatibleServer(prefix_cache_block=16) as server:
        assert _cached(server, body) == 0
        changed = {**body, "messages": [SYSTEM, {"role": "user", "content": "y"}]}
        assert _cached(server, changed) == 48  # 55 shared, in blocks of 16
        assert _cached(server, {**body, "model": "other"}) == 0
        assert _cached(server, {**body, "response_format": {"type": "json_object"}}) == 0
    with OpenAICompatibleServer(prefix_cache=False) as server:
        _post(server, body)
        _status, _headers, raw = _post(server, body)
        assert "prompt_tokens_details" not in json.loads(raw)["usage"]


def test_the_openai_manager_returns_the_servers_cached_tokens(openai_server, make_backend):
    backend = make_backend()
    backend.complete([SYSTEM, {"role": "user", "content": "first"}])
    result = backend.complete([SYSTEM, {"role": "user", "content": "second"}])
    assert result.cached_tokens == openai_server.cached_tokens[-1] == 52 + 3
