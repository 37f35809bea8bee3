"""The memory-manager conformance suite, run against both backends of this plugin."""

from __future__ import annotations

import pytest
from lightmem_openai.plugin import DEEPSEEK, OPENAI, OpenAIOptions, build

from lightmem_core.testing.conformance.memory_manager import MemoryManagerConformance
from lightmem_core.testing.openai_server import OpenAICompatibleServer

FAST = {"timeout": 0.5, "retry_backoff": 0.01, "retry_backoff_max": 0.02}


@pytest.fixture
def server():
    with OpenAICompatibleServer() as srv:
        yield srv


class TestOpenAIConformance(MemoryManagerConformance):
    supports_json_schema = True
    max_retries = 2

    @pytest.fixture
    def backend(self, server):
        options = OpenAIOptions(
            api_key="sk-conformance", openai_base_url=server.base_url, max_retries=2, **FAST
        )
        backend = build(options, provider=OPENAI)
        yield backend
        backend.close()


class TestDeepSeekConformance(MemoryManagerConformance):
    supports_json_schema = True
    max_retries = 1

    @pytest.fixture
    def backend(self, server):
        options = OpenAIOptions(
            api_key="sk-conformance", deepseek_base_url=server.base_url, max_retries=1, **FAST
        )
        backend = build(options, provider=DEEPSEEK)
        yield backend
        backend.close()
