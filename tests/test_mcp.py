"""The MCP server driven by the SDK's own client: over stdio (a subprocess of `lightmem mcp`)
and over streamable HTTP (a real uvicorn on loopback), two keys, every tool."""

from __future__ import annotations

import asyncio
import json
import sys

import pytest

pytest.importorskip("mcp")
httpx = pytest.importorskip("httpx")

from mcp import Client, StdioServerParameters  # noqa: E402

from lightmem_core import AsyncLightMemory  # noqa: E402
from lightmem_core.service.auth import Keys  # noqa: E402
from lightmem_core.service.loopback import serve_in_thread  # noqa: E402
from lightmem_core.service.mcp import http_app  # noqa: E402
from lightmem_core.testing.reference import reference_config  # noqa: E402

ALICE, BOB, OPS = "alice-key-0001", "bob-key-00002", "ops-admin-key"
KEYS = {ALICE: {"user_ids": ["alice"]}, BOB: {"user_ids": ["bob"]}, OPS: {"admin": True}}

TOOLS = {
    "get_timestamp",
    "add_memory",
    "retrieve_memory",
    "offline_update",
    "search_memory",
    "get_memory",
    "update_memory",
    "delete_memory",
    "list_memories",
    "erase_scope",
    "stats",
}


def _data(result):
    assert not result.is_error, result.content[0].text
    return result.structured_content


def _error(result) -> str:
    assert result.is_error, result
    return result.content[0].text


def _http_client(url: str, key: str | None) -> Client:
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    headers = {"Authorization": f"Bearer {key}"} if key else {}
    http = httpx2.AsyncClient(headers=headers, timeout=30)
    return Client(streamable_http_client(f"{url}/mcp", http_client=http))


@pytest.fixture
def mcp_url(tmp_path, ref_host):
    amem = AsyncLightMemory(reference_config(tmp_path / "mem"), host=ref_host)
    with serve_in_thread(http_app(amem, Keys.parse(KEYS))) as url:
        yield url
    asyncio.run(amem.close())


def test_tools_over_streamable_http_with_two_tenants(mcp_url):
    async def main():
        async with (
            _http_client(mcp_url, ALICE) as alice,
            _http_client(mcp_url, BOB) as bob,
            _http_client(mcp_url, OPS) as ops,
        ):
            tools = {t.name: t for t in (await alice.list_tools()).tools}
            assert set(tools) == TOOLS
            assert all(len(t.description or "") > 40 for t in tools.values() if t.name != "stats")
            # upstream's arguments are kept
            add_args = set(tools["add_memory"].input_schema["properties"])
            assert {
                "user_input",
                "assistant_reply",
                "timestamp",
                "force_segment",
                "force_extract",
            } <= add_args
            assert {"top_k", "keep_top_n", "score_threshold"} <= set(
                tools["offline_update"].input_schema["properties"]
            )
            assert {"query", "limit", "filters"} <= set(
                tools["retrieve_memory"].input_schema["properties"]
            )

            stamp = (await alice.call_tool("get_timestamp", {})).structured_content["result"]
            added = _data(
                await alice.call_tool(
                    "add_memory",
                    {
                        "user_input": "My sister Ines lives in Porto",
                        "assistant_reply": "Noted!",
                        "timestamp": stamp,
                        "force_extract": True,
                    },
                )
            )
            assert added["messages_added"] == 2
            hits = _data(await alice.call_tool("search_memory", {"query": "sister Porto"}))
            memory_id = hits["results"][0]["id"]
            assert hits["results"][0]["memory"] == "My sister Ines lives in Porto"
            lines = _data(await alice.call_tool("retrieve_memory", {"query": "sister"}))["result"]
            assert lines[0].endswith("My sister Ines lives in Porto")
            listed = _data(await alice.call_tool("list_memories", {}))
            assert listed["total"] == 1

            # Bob: every tool across the boundary is refused or finds nothing.
            denied = [
                await bob.call_tool("add_memory", {"user_input": "x", "user_id": "alice"}),
                await bob.call_tool("search_memory", {"query": "sister", "user_id": "alice"}),
                await bob.call_tool("retrieve_memory", {"query": "sister", "user_id": "alice"}),
                await bob.call_tool("list_memories", {"user_id": "alice"}),
                await bob.call_tool("erase_scope", {"confirm": True, "user_id": "alice"}),
                await bob.call_tool("stats", {}),
                await bob.call_tool("offline_update", {}),
            ]
            assert all("ForbiddenError" in _error(r) for r in denied)
            for name, args in [
                ("get_memory", {"memory_id": memory_id}),
                ("update_memory", {"memory_id": memory_id, "memory": "bob was here"}),
                ("delete_memory", {"memory_id": memory_id}),
            ]:
                text = _error(await bob.call_tool(name, args))
                assert "NotFoundError" in text and "no memory" in text
            assert _data(await bob.call_tool("search_memory", {"query": "sister"})) == {
                "results": []
            }

            # Alice edits her own memory; the admin key sees the whole memory.
            updated = _data(
                await alice.call_tool(
                    "update_memory",
                    {"memory_id": memory_id, "memory": "My sister Ines moved to Lisbon"},
                )
            )
            assert updated["memory"].endswith("Lisbon")
            got = _data(
                await alice.call_tool("get_memory", {"memory_id": memory_id, "history": True})
            )
            assert [h["action"] for h in got["history"]] == ["add", "update"]
            assert _data(await ops.call_tool("stats", {}))["entries"]["active"] >= 1
            # Without an LLM the pass cannot run: the reason comes back as a tool error.
            assert "needs an LLM" in _error(await ops.call_tool("offline_update", {}))

            # Bad input: a tool error with the message, the server goes on.
            assert "EmptyScopeError" in _error(
                await alice.call_tool("search_memory", {"query": "x", "user_id": ""})
            )
            assert "limit" in _error(
                await alice.call_tool("search_memory", {"query": "x", "limit": 10_000})
            )
            assert _error(await alice.call_tool("search_memory", {"query": 5}))
            assert "confirm" in _error(await alice.call_tool("erase_scope", {"confirm": False}))
            assert _data(await alice.call_tool("list_memories", {}))["total"] == 1

            _data(await alice.call_tool("delete_memory", {"memory_id": memory_id}))
            erased = _data(await alice.call_tool("erase_scope", {"confirm": True}))
            assert erased["entries"] == 1 and erased["scope"]["user_id"] == "alice"
            assert _data(await alice.call_tool("list_memories", {"include_inactive": True})) == {
                "results": [],
                "total": 0,
            }

    asyncio.run(main())


def test_http_needs_a_bearer_key(mcp_url):
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    for headers in ({}, {"Authorization": "Bearer wrong-key-123"}):
        response = httpx.post(f"{mcp_url}/mcp", json=body, headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"

    async def connect_without_key():
        async with _http_client(mcp_url, None) as client:
            await client.list_tools()

    with pytest.raises(Exception):  # noqa: B017 (the SDK's own error for an HTTP 401)
        asyncio.run(connect_without_key())


def test_tools_over_stdio_for_one_configured_user(tmp_path):
    pytest.importorskip("lightmem_bm25", reason="the BM25 plugin is not installed")
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {
                "memory_dir": str(tmp_path / "mem"),
                "retrieve_strategy": "context",
                "context_retriever": {"model_name": "BM25"},
                "text_embedder": None,
                "embedding_retriever": None,
                "topic_segment": False,
            }
        )
    )
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "lightmem_core.cli", "mcp", "--config", str(config), "--user-id", "alice"],
    )

    async def main():
        async with Client(params) as client:
            assert {t.name for t in (await client.list_tools()).tools} == TOOLS
            _data(
                await client.call_tool(
                    "add_memory", {"user_input": "I am allergic to peanuts", "force_extract": True}
                )
            )
            hits = _data(await client.call_tool("search_memory", {"query": "peanuts"}))
            assert hits["results"][0]["memory"] == "I am allergic to peanuts"
            # The server acts for alice only.
            assert "ForbiddenError" in _error(
                await client.call_tool("list_memories", {"user_id": "bob"})
            )
            assert "ForbiddenError" in _error(await client.call_tool("stats", {}))
            assert _data(await client.call_tool("list_memories", {}))["total"] == 1

    asyncio.run(main())


def test_the_client_configurations_in_the_docs_are_valid():
    """docs/mcp.md: each JSON block parses; a stdio one starts `lightmem` with arguments the
    command accepts; an HTTP one points at /mcp with a bearer header."""
    import re
    from pathlib import Path

    from lightmem_core.cli import build_parser

    page = (Path(__file__).resolve().parents[1] / "docs" / "mcp.md").read_text()
    blocks = [json.loads(b) for b in re.findall(r"^```json\n(.*?)^```$", page, re.M | re.S)]
    assert len(blocks) == 2
    (stdio,) = blocks[0]["mcpServers"].values()
    assert stdio["command"] == "lightmem"
    args = build_parser().parse_args(stdio["args"])
    assert args.func.__name__ == "cmd_mcp" and args.transport == "stdio"
    assert args.user_id == "me"
    (http,) = blocks[1]["servers"].values()
    assert http["url"].endswith("/mcp")
    assert http["headers"]["Authorization"].startswith("Bearer ")
    tools = {
        line.split("`")[1].split("(")[0] for line in page.splitlines() if line.startswith("| `")
    }
    assert tools == TOOLS
