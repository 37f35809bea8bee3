"""Shared fixtures: a backend factory pointed at the loopback OpenAI-compatible server."""

from __future__ import annotations

import pytest
from lightmem_openai.plugin import OPENAI, OpenAIOptions, build

#: A recognisable key: tests assert it never shows up in logs, reprs or errors. The test
#: modules repeat it (conftest is not importable under --import-mode=importlib).
SECRET = "sk-test-SECRET-5f3a9c1e77"

#: Short time-outs and back-off so fault tests stay fast.
FAST = {"timeout": 0.5, "retry_backoff": 0.01, "retry_backoff_max": 0.05, "max_retries": 3}

ENV_VARS = (
    "OPENAI_API_KEY",
    "DEEPSEEK_API_KEY",
    "OPENAI_BASE_URL",
    "OPENAI_API_BASE",
    "DEEPSEEK_BASE_URL",
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    """No key or endpoint leaks in from the developer's shell."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def make_backend(openai_server):
    """``make_backend(**options)``: a backend on ``openai_server`` with fast retries."""
    built = []

    def make(provider=OPENAI, **overrides):
        options = {"api_key": SECRET, "openai_base_url": openai_server.base_url, **FAST}
        options.update(overrides)
        backend = build(OpenAIOptions(**options), provider=provider)
        backend.sleeps = []

        def record(seconds: float) -> None:
            backend.sleeps.append(seconds)
            backend._real_sleep(seconds)

        backend._real_sleep = backend._sleep
        backend._sleep = record
        built.append(backend)
        return backend

    yield make
    for backend in built:
        backend.close()
