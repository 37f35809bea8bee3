"""The openai/deepseek memory manager against the real loopback server and the real client."""

from __future__ import annotations

import json
import logging
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest
from lightmem_hookspecs import Completion
from lightmem_openai.manager import PLACEHOLDER_KEY
from lightmem_openai.plugin import DEEPSEEK, OPENAI, OpenAIOptions, build

from lightmem_core.testing.openai_server import Fault, OpenAICompatibleServer, Reply, count_tokens

PROMPT = [
    {"role": "system", "content": "Extract facts as JSON."},
    {"role": "user", "content": "My sister Ana moved to Lisbon in March."},
]
#: The key every backend here is built with (the conftest's); it must never leak.
SECRET = "sk-test-SECRET-5f3a9c1e77"
FAST = {"timeout": 0.5, "retry_backoff": 0.01, "retry_backoff_max": 0.05, "max_retries": 3}
SCHEMA = {
    "title": "facts",
    "type": "object",
    "properties": {"facts": {"type": "array", "items": {"type": "string"}}},
    "required": ["facts"],
}


# -- scripted answers ---------------------------------------------------------------------


def test_scripted_answer_and_request_shape(openai_server, make_backend):
    openai_server.queue("Ana lives in Lisbon.")
    backend = make_backend(model="gpt-4o-mini")
    result = backend.complete(PROMPT)

    assert result == Completion(
        text="Ana lives in Lisbon.",
        prompt_tokens=sum(4 + count_tokens(m["content"]) for m in PROMPT),
        completion_tokens=count_tokens("Ana lives in Lisbon."),
        model="gpt-4o-mini",
        finish_reason="stop",
    )
    (request,) = openai_server.chat_requests
    assert request.authorization == f"Bearer {SECRET}"
    body = request.json
    assert body["model"] == "gpt-4o-mini"
    assert body["messages"] == PROMPT
    assert (body["temperature"], body["top_p"], body["max_tokens"], body["seed"]) == (
        0.1,
        0.1,
        2000,
        42,
    )
    assert "response_format" not in body and "top_k" not in body and "stop" not in body


def test_responder_answers_from_the_prompt(openai_server, make_backend):
    openai_server.responder = lambda body: body["messages"][-1]["content"].upper()
    backend = make_backend()
    assert backend.complete([{"role": "user", "content": "shout"}]).text == "SHOUT"
    assert backend.complete([{"role": "user", "content": "again"}]).text == "AGAIN"


def test_per_call_max_tokens_and_generation_options_are_sent(openai_server, make_backend):
    backend = make_backend(
        temperature=None,
        top_p=0.9,
        top_k=20,
        stop=["</json>"],
        seed=None,
        extra_body={"enable_thinking": False},
        extra_headers={"X-Team": "memory"},
        site_url="https://example.org",
        app_name="lightmem-tests",
        token_limit_param="max_completion_tokens",
    )
    backend.complete(PROMPT, max_tokens=77)
    request = openai_server.chat_requests[-1]
    body = request.json
    assert body["max_completion_tokens"] == 77 and "max_tokens" not in body
    assert "temperature" not in body and "seed" not in body
    assert body["top_p"] == 0.9 and body["top_k"] == 20 and body["stop"] == ["</json>"]
    assert body["enable_thinking"] is False
    assert request.headers["x-team"] == "memory"
    assert request.headers["http-referer"] == "https://example.org"
    assert request.headers["x-title"] == "lightmem-tests"


def test_missing_usage_is_estimated(openai_server, make_backend):
    openai_server.queue(Reply("twelve chars", omit_usage=True))
    result = make_backend().complete(PROMPT)
    assert result.completion_tokens == 3
    assert result.prompt_tokens == sum(count_tokens(m["content"]) for m in PROMPT)


def test_invalid_messages_are_refused_before_sending(openai_server, make_backend):
    backend = make_backend()
    with pytest.raises(ValueError, match=r"messages\[1\]: content must be a string"):
        backend.complete([{"role": "user", "content": "hi"}, {"role": "user", "content": None}])
    with pytest.raises(ValueError, match="at least one message"):
        backend.complete([])
    assert openai_server.chat_requests == []


# -- faults -------------------------------------------------------------------------------


def test_500_then_success(openai_server, make_backend):
    openai_server.queue(Fault.http_error(500), "fine now")
    backend = make_backend()
    assert backend.complete(PROMPT).text == "fine now"
    assert [r.outcome for r in openai_server.chat_requests] == ["500", "200"]
    assert len(backend.sleeps) == 1


def test_429_honours_retry_after(openai_server, make_backend):
    openai_server.queue(Fault.rate_limit(retry_after=0.2), "after the pause")
    backend = make_backend()
    assert backend.complete(PROMPT).text == "after the pause"
    assert backend.sleeps == [0.2]  # the server's wait, not the (much shorter) back-off
    assert [r.outcome for r in openai_server.chat_requests] == ["429", "200"]


def test_429_asking_for_too_long_a_wait_fails_at_once(openai_server, make_backend):
    openai_server.queue(Fault.rate_limit(retry_after=120))
    backend = make_backend(retry_after_max=5)
    with pytest.raises(RuntimeError, match="retry after 120s, more than retry_after_max=5s"):
        backend.complete(PROMPT)
    assert len(openai_server.chat_requests) == 1 and backend.sleeps == []


def test_timeout_then_success(openai_server, make_backend):
    openai_server.queue(Fault.timeout(delay=3), "on time")
    backend = make_backend(timeout=0.3)
    assert backend.complete(PROMPT).text == "on time"
    assert [r.outcome for r in openai_server.chat_requests] == ["timeout", "200"]


def test_timeouts_give_up_after_the_retry_bound(openai_server, make_backend):
    openai_server.fail_rate(1.0, fault=Fault.timeout(delay=3))
    backend = make_backend(timeout=0.2, max_retries=1)
    with pytest.raises(RuntimeError) as info:
        backend.complete(PROMPT)
    assert "no answer within timeout=0.2s" in str(info.value)
    assert "gave up after 2 attempt(s)" in str(info.value)
    assert len(openai_server.chat_requests) == 2


def test_malformed_json_fails_after_bounded_retries(openai_server, make_backend):
    openai_server.fail_rate(1.0, fault=Fault.malformed_json())
    backend = make_backend(max_retries=2)
    with pytest.raises(RuntimeError) as info:
        backend.complete(PROMPT)
    message = str(info.value)
    assert "malformed JSON in the response body" in message
    assert "gave up after 3 attempt(s) (max_retries=2)" in message
    assert len(openai_server.chat_requests) == 3


def test_malformed_json_once_then_success(openai_server, make_backend):
    openai_server.queue(Fault.malformed_json(), Fault.disconnect(), "whole")
    assert make_backend().complete(PROMPT).text == "whole"
    assert [r.outcome for r in openai_server.chat_requests] == ["malformed", "disconnect", "200"]


def test_truncated_output_is_reported_not_retried(openai_server, make_backend, caplog):
    openai_server.queue(Fault.truncated('{"facts": ["Ana mo'))
    with caplog.at_level(logging.WARNING, logger="lightmem.openai"):
        result = make_backend().complete(PROMPT)
    assert result.text == '{"facts": ["Ana mo' and result.finish_reason == "length"
    assert len(openai_server.chat_requests) == 1
    assert "cut at the token limit" in caplog.text


def test_server_side_max_tokens_cut(openai_server, make_backend):
    openai_server.queue("a long answer " * 50)
    result = make_backend().complete(PROMPT, max_tokens=5)
    assert result.finish_reason == "length" and result.completion_tokens == 5
    assert len(result.text) == 20


def test_client_errors_are_not_retried(openai_server, make_backend):
    openai_server.queue(Fault.http_error(404, "model not found"))
    backend = make_backend(model="no-such-model")
    with pytest.raises(RuntimeError, match=r"HTTP 404: check the base URL .*'no-such-model'"):
        backend.complete(PROMPT)
    assert len(openai_server.chat_requests) == 1


def test_bad_request_without_schema_is_not_retried(openai_server, make_backend):
    openai_server.queue(Fault.bad_request("context length exceeded"))
    with pytest.raises(RuntimeError, match=r"HTTP 400.*context length exceeded"):
        make_backend().complete(PROMPT)
    assert len(openai_server.chat_requests) == 1


def test_backoff_is_exponential_with_jitter_and_capped(openai_server, make_backend):
    openai_server.queue(*[Fault.http_error(503)] * 4, "done")
    backend = make_backend(max_retries=4, retry_backoff=0.01, retry_backoff_max=0.03)
    assert backend.complete(PROMPT).text == "done"
    caps = [0.01, 0.02, 0.03, 0.03]
    assert len(backend.sleeps) == 4
    for slept, cap in zip(backend.sleeps, caps, strict=True):
        assert cap / 2 <= slept <= cap


def test_thirty_percent_failures_all_calls_succeed_within_the_bound(openai_server, make_backend):
    openai_server.fail_rate(0.3, seed=11)
    openai_server.responder = lambda body: "answer to " + body["messages"][-1]["content"]
    backend = make_backend(max_retries=6)
    for i in range(25):
        result = backend.complete([{"role": "user", "content": f"q{i}"}])
        assert result.text == f"answer to q{i}"
    outcomes = [r.outcome for r in openai_server.chat_requests]
    assert outcomes.count("200") == 25
    assert outcomes.count("500") > 0  # the failure mode really fired
    assert len(outcomes) <= 25 * 7


# -- structured output --------------------------------------------------------------------


def test_json_schema_is_sent_as_response_format(openai_server, make_backend):
    openai_server.queue('{"facts": ["Ana moved to Lisbon in March."]}')
    backend = make_backend()
    result = backend.complete(PROMPT, json_schema=SCHEMA)
    assert json.loads(result.text) == {"facts": ["Ana moved to Lisbon in March."]}
    assert openai_server.chat_requests[0].response_format == {
        "type": "json_schema",
        "json_schema": {"name": "facts", "schema": SCHEMA},
    }


def test_wrapped_schema_is_passed_through(openai_server, make_backend):
    wrapped = {"name": "extraction", "schema": SCHEMA, "strict": True}
    make_backend().complete(PROMPT, json_schema=wrapped)
    assert openai_server.chat_requests[0].response_format["json_schema"] == wrapped


def test_json_mode_falls_back_on_400_and_remembers(openai_server, make_backend):
    openai_server.reject_response_formats = {"json_schema"}
    backend = make_backend()
    backend.complete(PROMPT, json_schema=SCHEMA)
    types = [(r.response_format or {}).get("type") for r in openai_server.chat_requests]
    assert types == ["json_schema", "json_object"]
    assert backend.structured_output_mode == "json_object"

    backend.complete(PROMPT, json_schema=SCHEMA)  # remembered: no failing try
    assert len(openai_server.chat_requests) == 3
    assert openai_server.chat_requests[-1].response_format == {"type": "json_object"}


def test_json_mode_falls_back_to_no_response_format(openai_server, make_backend):
    openai_server.reject_response_formats = {"json_schema", "json_object"}
    backend = make_backend()
    assert backend.complete(PROMPT, json_schema=SCHEMA).text
    formats = [r.response_format for r in openai_server.chat_requests]
    assert [f["type"] if f else None for f in formats] == ["json_schema", "json_object", None]
    assert backend.structured_output_mode == "none"
    backend.complete(PROMPT, json_schema=SCHEMA)
    assert openai_server.chat_requests[-1].response_format is None
    assert len(openai_server.chat_requests) == 4


def test_fallback_is_per_instance(openai_server, make_backend):
    openai_server.reject_response_formats = {"json_schema"}
    make_backend().complete(PROMPT, json_schema=SCHEMA)
    assert make_backend().structured_output_mode == "json_schema"


def test_unrelated_400_does_not_change_the_mode(openai_server, make_backend):
    openai_server.queue(*[Fault.bad_request("prompt too long")] * 3)
    backend = make_backend()
    with pytest.raises(RuntimeError, match="prompt too long"):
        backend.complete(PROMPT, json_schema=SCHEMA)
    assert backend.structured_output_mode == "json_schema"


def test_structured_output_option(openai_server, make_backend):
    make_backend(structured_output="json_object").complete(PROMPT, json_schema=SCHEMA)
    make_backend(structured_output="none").complete(PROMPT, json_schema=SCHEMA)
    formats = [r.response_format for r in openai_server.chat_requests]
    assert formats == [{"type": "json_object"}, None]


def test_deepseek_starts_with_json_object(openai_server, make_backend):
    backend = make_backend(
        provider=DEEPSEEK, openai_base_url=None, deepseek_base_url=openai_server.base_url
    )
    backend.complete(PROMPT, json_schema=SCHEMA)
    assert openai_server.chat_requests[0].response_format == {"type": "json_object"}
    assert openai_server.chat_requests[0].json["model"] == "deepseek-chat"


# -- TLS ----------------------------------------------------------------------------------


@pytest.fixture
def tls_files(tmp_path: Path):
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def tls_server(tls_files):
    cert, key = tls_files
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with OpenAICompatibleServer(ssl_context=context) as server:
        yield server


def test_tls_verification_stays_on(tls_server):
    backend = build(OpenAIOptions(api_key=SECRET, openai_base_url=tls_server.base_url, **FAST))
    with pytest.raises(RuntimeError, match="TLS certificate verification failed"):
        backend.complete(PROMPT)
    assert tls_server.chat_requests == []  # nothing (and no key) went to the untrusted server


def test_tls_works_with_a_trusted_certificate(tls_server, tls_files, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_files[0]))
    backend = build(OpenAIOptions(api_key=SECRET, openai_base_url=tls_server.base_url, **FAST))
    tls_server.queue("secure hello")
    assert backend.complete(PROMPT).text == "secure hello"


def test_source_never_disables_verification():
    package = Path(__file__).parents[1] / "lightmem_openai"
    for path in package.glob("*.py"):
        text = path.read_text()
        assert "verify=False" not in text and "CERT_NONE" not in text, path


# -- credentials --------------------------------------------------------------------------


def test_openai_key_from_environment(openai_server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env-1")
    backend = build(OpenAIOptions(openai_base_url=openai_server.base_url))
    backend.complete(PROMPT)
    assert openai_server.chat_requests[0].authorization == "Bearer sk-from-env-1"


def test_deepseek_key_from_environment(openai_server, monkeypatch):
    monkeypatch.setenv("DEEPSEEK_API_KEY", "sk-deepseek-env-2")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong-provider")
    backend = build(OpenAIOptions(deepseek_base_url=openai_server.base_url), provider=DEEPSEEK)
    backend.complete(PROMPT)
    assert openai_server.chat_requests[0].authorization == "Bearer sk-deepseek-env-2"


def test_named_key_variable(openai_server, monkeypatch):
    monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-dashscope-3")
    backend = build(
        OpenAIOptions(openai_base_url=openai_server.base_url, api_key_env="DASHSCOPE_API_KEY")
    )
    backend.complete(PROMPT)
    assert openai_server.chat_requests[0].authorization == "Bearer sk-dashscope-3"


def test_option_key_wins_over_environment(openai_server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    build(OpenAIOptions(api_key=SECRET, openai_base_url=openai_server.base_url)).complete(PROMPT)
    assert openai_server.chat_requests[0].authorization == f"Bearer {SECRET}"


def test_loopback_endpoint_runs_without_a_key(openai_server):
    build(OpenAIOptions(openai_base_url=openai_server.base_url)).complete(PROMPT)
    assert openai_server.chat_requests[0].authorization == f"Bearer {PLACEHOLDER_KEY}"


@pytest.mark.parametrize(
    ("provider", "options", "names"),
    [
        (OPENAI, {}, ["OPENAI_API_KEY", "configs.api_key", "https://api.openai.com/v1"]),
        (DEEPSEEK, {}, ["DEEPSEEK_API_KEY", "https://api.deepseek.com/v1"]),
        (OPENAI, {"openai_base_url": "https://llm.example.com/v1"}, ["OPENAI_API_KEY"]),
        (OPENAI, {"api_key_env": "MY_LLM_KEY"}, ["MY_LLM_KEY"]),
    ],
)
def test_missing_key_is_a_clear_build_error(provider, options, names):
    with pytest.raises(ValueError, match="no API key") as info:
        build(OpenAIOptions(**options), provider=provider)
    for name in names:
        assert name in str(info.value)


def test_base_url_from_environment(openai_server, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", openai_server.base_url)
    backend = build(OpenAIOptions())
    assert backend.base_url == openai_server.base_url
    backend.complete(PROMPT)
    assert len(openai_server.chat_requests) == 1


def test_conflicting_base_urls_are_refused():
    with pytest.raises(ValueError, match="several different base URLs"):
        build(
            OpenAIOptions(
                api_key=SECRET,
                openai_base_url="http://localhost:8000/v1",
                vllm_base_url="http://localhost:9000/v1",
            )
        )


def test_local_model_options_are_ignored_with_a_warning(openai_server, caplog):
    with caplog.at_level(logging.WARNING, logger="lightmem.openai"):
        build(OpenAIOptions(openai_base_url=openai_server.base_url, num_gpu=1, host="x"))
    assert "host, num_gpu apply to local models only" in caplog.text


def test_wrong_key_is_reported_without_retries(make_backend, openai_server):
    openai_server.api_key = "sk-the-right-one"
    backend = make_backend()
    with pytest.raises(
        RuntimeError, match=r"refused the API key \(HTTP 401\); check OPENAI_API_KEY"
    ):
        backend.complete(PROMPT)
    assert len(openai_server.chat_requests) == 1


def test_key_never_appears_in_logs_reprs_or_errors(openai_server, make_backend, caplog, capsys):
    import traceback

    caplog.set_level(logging.DEBUG)  # every logger: lightmem, openai, httpx, httpcore
    options = OpenAIOptions(api_key=SECRET, openai_base_url=openai_server.base_url, **FAST)
    backend = make_backend()
    openai_server.queue(Fault.http_error(500), "ok", Fault.rate_limit(0.01), "ok")
    backend.complete(PROMPT)
    backend.complete(PROMPT, json_schema=SCHEMA)
    # A server that echoes the key in its error body: the error must still not carry it.
    openai_server.fail_rate(1.0, fault=Fault.http_error(502, f"upstream rejected {SECRET}"))
    with pytest.raises(RuntimeError) as info:
        backend.complete(PROMPT)
    openai_server.fail_rate(0.0)
    openai_server.api_key = "sk-other"
    with pytest.raises(RuntimeError) as unauthorized:
        backend.complete(PROMPT)

    assert "'***'" in repr(options)
    texts = [
        repr(options),
        str(options),
        repr(backend),
        str(backend),
        caplog.text,
        *(str(r.args) for r in caplog.records),
        "".join(traceback.format_exception(info.value)),
        "".join(traceback.format_exception(unauthorized.value)),
        *capsys.readouterr(),
    ]
    assert "***" in str(info.value)  # the echoed key was scrubbed, not dropped silently
    assert caplog.records, "logging was captured"
    for text in texts:
        assert SECRET not in text
