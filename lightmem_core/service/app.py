"""The REST service: an ASGI app (FastAPI) over one :class:`~lightmem_core.aio.AsyncLightMemory`.

It adds transport, API keys and caps over the memory's public API, nothing else. Build it with
:func:`create_app`; ``lightmem serve`` runs it on uvicorn. See docs/service.md.
"""

from __future__ import annotations

import contextlib
import logging
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

import attrs
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from lightmem_hookspecs import Scope
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..aio import AsyncLightMemory
from ..errors import InputError, LightMemError
from ..scope import make_scope
from .auth import Grant, Keys, require, require_admin
from .codec import (
    ConflictError,
    NotFoundError,
    PayloadTooLargeError,
    add_result_to_json,
    change_to_json,
    entry_to_json,
    history_to_json,
    hit_to_json,
    status_of,
)

log = logging.getLogger("lightmem.service")

API_VERSION = "v1"


@attrs.frozen
class Limits:
    """Caps on what one request may carry."""

    #: The largest request body (bytes); larger ones get 413.
    max_body_bytes: int = 1_048_576
    #: The most messages one add may carry (413 past it).
    max_messages: int = 200
    #: The largest ``limit`` of a search or listing (422 past it).
    max_limit: int = 100


# -- request bodies --------------------------------------------------------------------------

_STRICT = ConfigDict(extra="forbid", strict=True)


class MessageIn(BaseModel):
    model_config = _STRICT

    role: str
    content: str
    time_stamp: str | int | float | None = None
    expires_at: str | int | float | None = None
    id: str | None = None
    speaker_id: str | None = None
    speaker_name: str | None = None
    metadata: dict[str, Any] | None = None


class ScopeIn(BaseModel):
    model_config = _STRICT

    user_id: str | None = None
    agent_id: str | None = None
    run_id: str | None = None


class AddIn(ScopeIn):
    messages: list[MessageIn]
    force_segment: bool = False
    force_extract: bool = False


class SearchIn(ScopeIn):
    query: str
    limit: int = 10
    strategy: Literal["embedding", "context", "hybrid"] | None = None
    filters: dict[str, Any] | None = None


class PatchIn(BaseModel):
    model_config = _STRICT

    memory: str
    reason: str = "updated through the service"


def _both_steps() -> list[Literal["queue", "offline"]]:
    return ["queue", "offline"]


class UpdatePassIn(BaseModel):
    model_config = _STRICT

    steps: list[Literal["queue", "offline"]] = Field(default_factory=_both_steps)
    top_k: int = Field(default=20, ge=1, le=1000)
    keep_top_n: int = Field(default=10, ge=1, le=1000)
    score_threshold: float = Field(default=0.8, ge=0.0, le=1.0)


# -- errors ----------------------------------------------------------------------------------

_PATH = re.compile(r"^((?:filters\.)?[A-Za-z_][\w]*(?:\[\d+\])?(?:\.[A-Za-z_]\w*)?): ")


def _json_path(message: str) -> str | None:
    match = _PATH.match(message)
    return f"$.{match.group(1)}" if match else None


def _error(status: int, kind: str, message: str, path: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"type": kind, "message": message}
    if path is not None:
        body["path"] = path
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def _json(data: Any) -> Any:
    """``data`` (already JSON-ready: the codec's output) as the response, without FastAPI's
    generic encoder walking it again (1-2 ms for ten hits)."""
    return JSONResponse(data)


def _loc_path(loc: tuple[Any, ...]) -> str:
    parts = list(loc[1:] if loc and loc[0] in ("body", "query", "path") else loc)
    out = "$"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


class _BodyLimit:
    """Pure ASGI middleware: 413 for a body over ``limit`` bytes (declared or streamed)."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        message = f"request body over {self.limit} bytes; send less per request"
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = self.limit + 1
                if declared > self.limit:
                    await _error(413, "PayloadTooLargeError", message)(scope, receive, send)
                    return
        seen = 0
        too_large = False

        async def limited() -> dict[str, Any]:
            nonlocal seen, too_large
            event: dict[str, Any] = await receive()
            if event["type"] == "http.request":
                seen += len(event.get("body", b""))
                if seen > self.limit:
                    too_large = True
                    raise PayloadTooLargeError(message)
            return event

        try:
            await self.app(scope, limited, send)
        except PayloadTooLargeError:
            if not too_large:
                raise
            await _error(413, "PayloadTooLargeError", message)(scope, receive, send)


# -- the app ---------------------------------------------------------------------------------


def create_app(
    memory: AsyncLightMemory,
    keys: Keys,
    *,
    limits: Limits | None = None,
    cors_origins: list[str] | None = None,
    owns_memory: bool = True,
) -> FastAPI:
    """The REST app over ``memory``; it opens the memory on start-up and, if it owns it,
    closes it on shut-down."""
    limits = limits or Limits()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await memory.open()
        try:
            yield
        finally:
            if owns_memory:
                await memory.close()

    app = FastAPI(
        title="LightMem",
        version=API_VERSION,
        summary="Long-term memory for LLM applications: add, search, edit and erase memories.",
        lifespan=lifespan,
    )
    bearer = HTTPBearer(auto_error=False, description="an API key from the keys file")

    async def grant_of(
        credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
    ) -> Grant:
        header = None if credentials is None else f"Bearer {credentials.credentials}"
        return keys.grant(header)

    def scope_of(grant: Grant, user_id: Any, agent_id: Any, run_id: Any) -> Scope:
        return require(grant, make_scope(user_id, agent_id, run_id))

    def check_limit(limit: int) -> int:
        if isinstance(limit, bool) or not isinstance(limit, int) or not limit >= 1:
            raise InputError(f"limit: expected a positive integer, got {limit!r}")
        if limit > limits.max_limit:
            raise InputError(f"limit: at most {limits.max_limit} on this service, got {limit}")
        return limit

    async def visible_entry(grant: Grant, entry_id: str) -> Any:
        entry = await memory.get(entry_id) if 0 < len(entry_id) <= 512 else None
        # Another tenant's entry reads exactly like a missing one.
        if entry is None or not grant.permits(entry.scope):
            raise NotFoundError(f"entry_id: no entry {entry_id!r}")
        return entry

    # -- error mapping -------------------------------------------------------------------

    @app.exception_handler(LightMemError)
    async def lightmem_error(request: Request, exc: LightMemError) -> JSONResponse:
        status = status_of(exc)
        if status >= 500:
            error_id = uuid.uuid4().hex[:12]
            log.error(
                "error %s on %s %s: %s",
                error_id,
                request.method,
                request.url.path,
                exc,
                exc_info=exc,
            )
            if status == 500:
                return _error(500, "InternalError", f"internal error (reference {error_id})")
        message = str(exc)
        return _error(status, type(exc).__name__, message, _json_path(message))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request", "type": ""}
        path = _loc_path(tuple(first.get("loc", ())))
        if first.get("type") == "json_invalid":
            return _error(400, "InputError", f"malformed JSON: {first.get('msg')}", "$")
        lines = [f"{_loc_path(tuple(e.get('loc', ())))}: {e.get('msg')}" for e in errors[:10]]
        return _error(422, "InputError", "; ".join(lines), path)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, "HTTPError", str(exc.detail))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        error_id = uuid.uuid4().hex[:12]
        log.error("error %s on %s %s", error_id, request.method, request.url.path, exc_info=exc)
        return _error(500, "InternalError", f"internal error (reference {error_id})")

    # -- endpoints -----------------------------------------------------------------------

    @app.get("/healthz", tags=["service"], summary="Liveness: 200 when the memory is open")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/memories", tags=["memories"], summary="Add messages to a scope")
    async def add(body: AddIn, grant: Grant = Depends(grant_of)) -> dict[str, Any]:
        scope = scope_of(grant, body.user_id, body.agent_id, body.run_id)
        if len(body.messages) > limits.max_messages:
            raise PayloadTooLargeError(
                f"messages: at most {limits.max_messages} per request on this service, got "
                f"{len(body.messages)}; send them in several requests"
            )
        messages = [m.model_dump(exclude_none=True) for m in body.messages]
        result = await memory.add_memory(
            messages,
            body.force_segment,
            body.force_extract,
            user_id=scope.user_id,
            agent_id=scope.agent_id,
            run_id=scope.run_id,
        )
        return add_result_to_json(result)

    @app.post("/v1/memories/search", tags=["memories"], summary="Search a scope's memories")
    async def search(body: SearchIn, grant: Grant = Depends(grant_of)) -> dict[str, Any]:
        filters = dict(body.filters or {})
        # Scope keys may come in filters too; they are authorised like the top-level ones.
        from ..queries import build_filter

        merged = build_filter(filters, body.user_id, body.agent_id, body.run_id)
        scope = scope_of(grant, merged.user_id, merged.agent_id, merged.run_id)
        for key in ("user_id", "agent_id", "run_id"):
            filters.pop(key, None)
        hits = await memory.search(
            body.query,
            check_limit(body.limit),
            strategy=body.strategy,
            filters=filters or None,
            user_id=scope.user_id,
            agent_id=scope.agent_id,
            run_id=scope.run_id,
        )
        return _json({"results": [hit_to_json(h) for h in hits]})

    @app.get("/v1/memories", tags=["memories"], summary="List a scope's memories")
    async def list_memories(
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        include_inactive: bool = False,
        limit: int | None = Query(default=None, ge=1),
        offset: int = Query(default=0, ge=0),
        grant: Grant = Depends(grant_of),
    ) -> dict[str, Any]:
        scope = scope_of(grant, user_id, agent_id, run_id)
        limit = limits.max_limit if limit is None else check_limit(limit)
        entries = await memory.get_all(
            user_id=scope.user_id,
            agent_id=scope.agent_id,
            run_id=scope.run_id,
            include_inactive=include_inactive,
        )
        page = entries[offset : offset + limit]
        return _json(
            {
                "results": [entry_to_json(e) for e in page],
                "total": len(entries),
                "limit": limit,
                "offset": offset,
            }
        )

    @app.delete(
        "/v1/memories",
        tags=["memories"],
        summary="Erase a tenant: every message, memory, history row and index record of the "
        "matching scopes",
    )
    async def erase(
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        grant: Grant = Depends(grant_of),
    ) -> dict[str, Any]:
        scope = make_scope(user_id, agent_id, run_id)
        if scope == Scope():
            raise InputError("user_id: name the user_id (or agent_id, run_id) to erase")
        require(grant, scope)
        receipt = await memory.erase(
            user_id=scope.user_id, agent_id=scope.agent_id, run_id=scope.run_id
        )
        data: dict[str, Any] = receipt.as_dict()
        return data

    @app.get("/v1/memories/{entry_id}", tags=["memories"], summary="One memory")
    async def get_entry(entry_id: str, grant: Grant = Depends(grant_of)) -> dict[str, Any]:
        return _json(entry_to_json(await visible_entry(grant, entry_id)))

    @app.patch("/v1/memories/{entry_id}", tags=["memories"], summary="Rewrite a memory")
    async def patch_entry(
        entry_id: str,
        body: PatchIn,
        grant: Grant = Depends(grant_of),
    ) -> dict[str, Any]:
        entry = await visible_entry(grant, entry_id)
        if entry.status != "active":
            raise ConflictError(f"entry_id: entry {entry_id!r} is {entry.status}, not active")
        return entry_to_json(await memory.update(entry_id, body.memory, body.reason))

    @app.delete("/v1/memories/{entry_id}", tags=["memories"], summary="Delete a memory")
    async def delete_entry(
        entry_id: str,
        reason: str = "deleted through the service",
        grant: Grant = Depends(grant_of),
    ) -> dict[str, Any]:
        entry = await visible_entry(grant, entry_id)
        if entry.status != "active":
            raise ConflictError(f"entry_id: entry {entry_id!r} is {entry.status}, not active")
        await memory.delete(entry_id, reason)
        return {"id": entry_id, "deleted": True}

    @app.get("/v1/memories/{entry_id}/history", tags=["memories"], summary="A memory's changes")
    async def entry_history(entry_id: str, grant: Grant = Depends(grant_of)) -> dict[str, Any]:
        await visible_entry(grant, entry_id)
        rows = await memory.history(entry_id)
        return {"results": [history_to_json(r) for r in rows]}

    @app.post("/v1/update", tags=["maintenance"], summary="Run the sleep-time update pass")
    async def update_pass(
        body: UpdatePassIn | None = None,
        grant: Grant = Depends(grant_of),
    ) -> dict[str, Any]:
        require_admin(grant)
        body = body or UpdatePassIn()
        queued = changes = None
        if "queue" in body.steps:
            queued = await memory.construct_update_queue_all_entries(body.top_k, body.keep_top_n)
        if "offline" in body.steps:
            changes = await memory.offline_update_all_entries(body.score_threshold)
        return {
            "queued": queued,
            "changes": None if changes is None else [change_to_json(c) for c in changes],
        }

    @app.get("/v1/stats", tags=["maintenance"], summary="Counts, usage, backends and chains")
    async def stats(grant: Grant = Depends(grant_of)) -> dict[str, Any]:
        require_admin(grant)
        data: dict[str, Any] = await memory.stats()
        return data

    if cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(_BodyLimit, limit=limits.max_body_bytes)
    return app
