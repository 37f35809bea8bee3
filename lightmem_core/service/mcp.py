"""The MCP server (``lightmem mcp``): a memory's API as tools for a model, on the official
``mcp`` SDK (``MCPServer``), over stdio or streamable HTTP.

The tools keep upstream LightMem's names and arguments (``add_memory``, ``retrieve_memory``,
``offline_update``, ``get_timestamp``) and add ``search_memory``, ``get_memory``,
``update_memory``, ``delete_memory``, ``list_memories``, ``erase_scope`` and ``stats``.

Scope: over stdio the server acts for the local user: with ``--user-id`` every call is that
user's (a call naming another user is refused), without it any scope may be named. Over HTTP
each request carries ``Authorization: Bearer KEY`` from the same keys file as ``lightmem
serve``; a request without a valid key is answered 401 before it reaches a tool, and a call
acts only on the scopes its key is granted (the key's only user when the call names none).
Errors come back as tool errors carrying the message, never as a crash of the server.

(No ``from __future__ import annotations`` here: the SDK reads the tools' annotations, and
``Context`` is imported inside :func:`build_server`.)
"""

import datetime as dt
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from lightmem_hookspecs import Scope

from ..aio import AsyncLightMemory
from ..errors import InputError, LightMemError
from ..scope import make_scope
from .auth import Grant, Keys, require, require_admin
from .codec import (
    NotFoundError,
    add_result_to_json,
    change_to_json,
    entry_to_json,
    history_to_json,
    hit_to_json,
    status_of,
)

log = logging.getLogger("lightmem.mcp")

#: The largest ``limit`` a tool accepts.
MAX_LIMIT = 100

INSTRUCTIONS = """\
Long-term memory for this conversation's user. Store facts worth remembering with add_memory
(one user turn and, optionally, your reply); before answering anything that may depend on the
past (preferences, plans, names, earlier events), call search_memory or retrieve_memory with a
short question. Fix a wrong memory with update_memory, remove one with delete_memory. Memories
are kept per user: pass user_id only when you serve several users."""


def build_server(
    memory: AsyncLightMemory,
    *,
    keys: Keys | None = None,
    local_grant: Grant | None = None,
) -> Any:
    """The ``MCPServer`` over ``memory``. ``keys``: the HTTP transport's API keys (each call's
    grant comes from its request's bearer token); ``local_grant``: what a stdio caller may do
    (default: any scope)."""
    from mcp.server import MCPServer
    from mcp.server.mcpserver import Context
    from mcp.server.mcpserver.exceptions import ToolError

    local = local_grant or Grant(admin=True)
    amem = memory  # (update_memory's text argument is called memory, as upstream's)
    server = MCPServer(name="lightmem", instructions=INSTRUCTIONS, version="1")

    def grant_of(ctx: Context) -> Grant:
        request = None
        try:
            request = ctx.request_context.request
        except ValueError:
            request = None
        headers = getattr(request, "headers", None)
        if headers is None:
            return local
        if keys is None:
            raise ToolError("this server has no API keys; it cannot take HTTP calls")
        return keys.grant(headers.get("authorization"))

    async def guarded(name: str, call: Callable[[], Awaitable[Any]]) -> Any:
        try:
            return await call()
        except ToolError:
            raise
        except LightMemError as exc:
            if status_of(exc) == 500:
                reference = uuid.uuid4().hex[:12]
                log.error("tool %s failed (reference %s)", name, reference, exc_info=exc)
                raise ToolError(f"internal error (reference {reference})") from None
            raise ToolError(f"{type(exc).__name__}: {exc}") from None
        except Exception as exc:
            reference = uuid.uuid4().hex[:12]
            log.error("tool %s failed (reference %s)", name, reference, exc_info=exc)
            raise ToolError(f"internal error (reference {reference})") from None

    def scope_for(ctx: Context, user_id: Any, agent_id: Any, run_id: Any) -> Scope:
        return require(grant_of(ctx), make_scope(user_id, agent_id, run_id))

    async def visible(ctx: Context, memory_id: str) -> Any:
        entry = await memory.get(memory_id) if isinstance(memory_id, str) and memory_id else None
        if entry is None or not grant_of(ctx).permits(entry.scope):
            raise NotFoundError(f"memory_id: no memory {memory_id!r}")
        return entry

    def check_limit(limit: int) -> int:
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
            raise InputError(f"limit: expected an integer from 1 to {MAX_LIMIT}, got {limit!r}")
        return limit

    @server.tool(
        description="The current date and time (UTC, ISO 8601). Use it as the timestamp of "
        "add_memory, or to reason about how long ago a remembered event was."
    )
    async def get_timestamp() -> str:
        return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()

    @server.tool(
        description="Remember one exchange: the user's message (user_input) and, optionally, "
        "your reply (assistant_reply). timestamp (ISO 8601, default now) dates the facts. "
        "Facts are extracted in batches: force_extract=true makes them searchable at once. "
        "Call it for information worth keeping (preferences, facts about the user, plans, "
        "decisions), not for small talk."
    )
    async def add_memory(
        ctx: Context,
        user_input: str,
        assistant_reply: str | None = None,
        timestamp: str | None = None,
        force_segment: bool = False,
        force_extract: bool = False,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
    ) -> dict[str, Any]:
        async def call() -> dict[str, Any]:
            scope = scope_for(ctx, user_id, agent_id, run_id)
            stamp = timestamp or dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
            messages = [{"role": "user", "content": user_input, "time_stamp": stamp}]
            if assistant_reply:
                messages.append(
                    {"role": "assistant", "content": assistant_reply, "time_stamp": stamp}
                )
            result = await memory.add_memory(
                messages,
                force_segment,
                force_extract,
                user_id=scope.user_id,
                agent_id=scope.agent_id,
                run_id=scope.run_id,
            )
            return add_result_to_json(result)

        result: dict[str, Any] = await guarded("add_memory", call)
        return result

    @server.tool(
        description="Recall memories relevant to a question, as lines 'date weekday memory', "
        'best first. Ask a short, specific question ("what is the user\'s dog called?"). '
        "filters may narrow by speaker, topic_id or time (time_gte / time_lte, epoch seconds)."
    )
    async def retrieve_memory(
        ctx: Context,
        query: str,
        limit: int = 10,
        filters: dict[str, Any] | None = None,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
    ) -> list[str]:
        async def call() -> list[str]:
            scope = scope_for(ctx, user_id, agent_id, run_id)
            lines: list[str] = await memory.retrieve(
                query,
                check_limit(limit),
                _plain_filters(filters),
                user_id=scope.user_id,
                agent_id=scope.agent_id,
                run_id=scope.run_id,
            )
            return lines

        result: list[str] = await guarded("retrieve_memory", call)
        return result

    @server.tool(
        description="Search memories with scores and ids (use the id with get_memory, "
        "update_memory or delete_memory). strategy: hybrid (default), embedding (meaning) or "
        "context (exact words). filters: speaker, topic_id, time_gt/time_gte/time_lt/time_lte "
        "(epoch seconds), exclude_ids."
    )
    async def search_memory(
        ctx: Context,
        query: str,
        limit: int = 10,
        strategy: str | None = None,
        filters: dict[str, Any] | None = None,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
    ) -> dict[str, Any]:
        async def call() -> dict[str, Any]:
            scope = scope_for(ctx, user_id, agent_id, run_id)
            hits = await memory.search(
                query,
                check_limit(limit),
                strategy=strategy,
                filters=_plain_filters(filters),
                user_id=scope.user_id,
                agent_id=scope.agent_id,
                run_id=scope.run_id,
            )
            return {"results": [_brief_hit(h) for h in hits]}

        result: dict[str, Any] = await guarded("search_memory", call)
        return result

    @server.tool(
        description="One memory by id, with its status, time stamp and sources; history=true "
        "adds every change made to it (add, update, delete) with reasons."
    )
    async def get_memory(ctx: Context, memory_id: str, history: bool = False) -> dict[str, Any]:
        async def call() -> dict[str, Any]:
            entry = entry_to_json(await visible(ctx, memory_id))
            if history:
                entry["history"] = [history_to_json(r) for r in await memory.history(memory_id)]
            return entry

        result: dict[str, Any] = await guarded("get_memory", call)
        return result

    @server.tool(
        description="Correct a memory: replace its text (memory) and say why (reason). The old "
        "text stays in its history."
    )
    async def update_memory(
        ctx: Context, memory_id: str, memory: str, reason: str = "corrected by the assistant"
    ) -> dict[str, Any]:
        async def call() -> dict[str, Any]:
            await visible(ctx, memory_id)
            return entry_to_json(await amem.update(memory_id, memory, reason))

        result: dict[str, Any] = await guarded("update_memory", call)
        return result

    @server.tool(
        description="Forget one memory (it is no longer recalled; its history keeps the "
        "deletion). Use it when the user says a memory is wrong or asks to forget it."
    )
    async def delete_memory(
        ctx: Context, memory_id: str, reason: str = "deleted by the assistant"
    ) -> dict[str, Any]:
        async def call() -> dict[str, Any]:
            await visible(ctx, memory_id)
            await memory.delete(memory_id, reason)
            return {"id": memory_id, "deleted": True}

        result: dict[str, Any] = await guarded("delete_memory", call)
        return result

    @server.tool(
        description="List the memories of the user (or a scope), newest last, a page at a time "
        "(limit, offset); include_inactive=true lists deleted and superseded ones too."
    )
    async def list_memories(
        ctx: Context,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        include_inactive: bool = False,
        limit: int = 50,
        offset: int = 0,
    ) -> dict[str, Any]:
        async def call() -> dict[str, Any]:
            scope = scope_for(ctx, user_id, agent_id, run_id)
            check_limit(limit)
            if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
                raise InputError(f"offset: expected a non-negative integer, got {offset!r}")
            entries = await memory.get_all(
                user_id=scope.user_id,
                agent_id=scope.agent_id,
                run_id=scope.run_id,
                include_inactive=include_inactive,
            )
            page = entries[offset : offset + limit]
            return {"results": [_brief_entry(e) for e in page], "total": len(entries)}

        result: dict[str, Any] = await guarded("list_memories", call)
        return result

    @server.tool(
        description="Erase everything remembered about a user (or agent, run): messages, "
        "memories and their history, for good. Only when the user explicitly asks to be "
        "forgotten entirely; confirm must be true."
    )
    async def erase_scope(
        ctx: Context,
        confirm: bool,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
    ) -> dict[str, Any]:
        async def call() -> dict[str, Any]:
            if confirm is not True:
                raise InputError("confirm: must be true to erase; nothing was erased")
            scope = scope_for(ctx, user_id, agent_id, run_id)
            receipt = await memory.erase(
                user_id=scope.user_id, agent_id=scope.agent_id, run_id=scope.run_id
            )
            data: dict[str, Any] = receipt.as_dict()
            return data

        result: dict[str, Any] = await guarded("erase_scope", call)
        return result

    @server.tool(
        description="Run the consolidation pass over the whole memory (admin): newer facts "
        "update or retire older similar ones. top_k / keep_top_n: neighbours considered; "
        "score_threshold: how similar (0-1) an older memory must be."
    )
    async def offline_update(
        ctx: Context, top_k: int = 20, keep_top_n: int = 10, score_threshold: float = 0.8
    ) -> dict[str, Any]:
        async def call() -> dict[str, Any]:
            require_admin(grant_of(ctx))
            queued = await memory.construct_update_queue_all_entries(top_k, keep_top_n)
            changes = await memory.offline_update_all_entries(score_threshold)
            return {"queued": queued, "changes": [change_to_json(c) for c in changes]}

        result: dict[str, Any] = await guarded("offline_update", call)
        return result

    @server.tool(
        description="Counts of memories and messages, LLM and embedder usage, and the "
        "configured backends (admin)."
    )
    async def stats(ctx: Context) -> dict[str, Any]:
        async def call() -> dict[str, Any]:
            require_admin(grant_of(ctx))
            data: dict[str, Any] = await memory.stats()
            return data

        result: dict[str, Any] = await guarded("stats", call)
        return result

    return server


def _plain_filters(filters: dict[str, Any] | None) -> dict[str, Any] | None:
    if filters is None:
        return None
    if not isinstance(filters, dict):
        raise InputError(f"filters: expected an object, got {type(filters).__name__}")
    return filters


def _brief_entry(entry: Any) -> dict[str, Any]:
    data = entry_to_json(entry)
    return {k: v for k, v in data.items() if v not in (None, [], {})}


def _brief_hit(hit: Any) -> dict[str, Any]:
    data = hit_to_json(hit)
    entry = data.pop("entry") or {}
    return {
        "id": data["id"],
        "memory": entry.get("memory"),
        "time_stamp": entry.get("time_stamp"),
        "score": data["score"],
        "scores": data["scores"],
    }


class BearerGate:
    """ASGI middleware in front of the streamable HTTP app: 401 unless the request carries a
    key from the keys file (the tools then act within that key's grant)."""

    def __init__(self, app: Any, keys: Keys) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = dict(scope.get("headers") or ())
            header = headers.get(b"authorization")
            try:
                self.keys.grant(header.decode("latin-1") if header else None)
            except LightMemError as exc:
                from starlette.responses import JSONResponse

                response = JSONResponse(
                    {"error": {"type": type(exc).__name__, "message": str(exc)}},
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def http_app(memory: AsyncLightMemory, keys: Keys, *, host: str = "127.0.0.1") -> Any:
    """The streamable HTTP app (at ``/mcp``) behind the bearer gate."""
    server = build_server(memory, keys=keys)
    app = server.streamable_http_app(
        streamable_http_path="/mcp", stateless_http=True, json_response=True, host=host
    )
    return BearerGate(app, keys)
