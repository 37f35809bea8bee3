"""``RemoteMemory`` and ``AsyncRemoteMemory``: the API of ``LightMemory`` over HTTP, against a
memory served by ``lightmem serve``, so an application switches between an embedded and a
served memory by configuration.

Errors come back as the same :class:`~lightmem_core.errors.LightMemError` subclasses the
embedded memory raises (an unknown entry: ``get`` returns ``None``, ``update`` raises
:class:`~lightmem_core.service.codec.NotFoundError`, an ``InputError``). Needs ``httpx``
(``pip install 'lightmem-core[service]'``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import attrs
from lightmem_hookspecs import EntryChange, MemoryEntry, SearchFilter, SearchHit

from .errors import InputError, LightMemError
from .service.codec import (
    ERROR_TYPES,
    NotFoundError,
    add_result_from_json,
    change_from_json,
    entry_from_json,
    hit_from_json,
)

__all__ = ["AsyncRemoteMemory", "RemoteMemory"]

#: The environment variable a client reads its API key from when none is given.
KEY_ENV = "LIGHTMEM_API_KEY"


@attrs.frozen
class _Call:
    """One request and how to read its answer."""

    method: str
    path: str
    decode: Callable[[Any], Any]
    params: dict[str, Any] | None = None
    body: Any = None
    #: What a 404 answers (``get`` -> None); without it a 404 raises NotFoundError.
    on_missing: tuple[Any, ...] = ()


def _scope(user_id: Any, agent_id: Any, run_id: Any) -> dict[str, Any]:
    return {
        k: v
        for k, v in (("user_id", user_id), ("agent_id", agent_id), ("run_id", run_id))
        if v is not None
    }


def _filters(filters: SearchFilter | Mapping[str, Any] | None) -> dict[str, Any] | None:
    if filters is None:
        return None
    if isinstance(filters, SearchFilter):
        out: dict[str, Any] = {}
        for field in attrs.fields(SearchFilter):
            value = getattr(filters, field.name)
            if value not in (None, frozenset()):
                out[field.name] = sorted(value) if isinstance(value, frozenset) else value
        return out
    return {k: (v.timestamp() if hasattr(v, "timestamp") else v) for k, v in filters.items()}


def _error(status: int, data: Any) -> LightMemError:
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return LightMemError(f"HTTP {status}: {data!r}")
    cls = ERROR_TYPES.get(str(error.get("type")))
    if cls is None:
        cls = InputError if 400 <= status < 500 else LightMemError
    if status == 404 and not issubclass(cls, NotFoundError):
        cls = NotFoundError
    exc = cls.__new__(cls)
    Exception.__init__(exc, error.get("message", ""))
    exc.status = status  # type: ignore[attr-defined]
    exc.path = error.get("path")  # type: ignore[attr-defined]
    return exc


class _Api:
    """The calls of the memory API as requests; the transports send them."""

    # -- ingestion -------------------------------------------------------------------------

    def _add_memory(
        self,
        messages: Any,
        force_segment: bool = False,
        force_extract: bool = False,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
    ) -> _Call:
        if isinstance(messages, Mapping):
            messages = [messages]
        body = {
            "messages": list(messages),
            "force_segment": force_segment,
            "force_extract": force_extract,
            **_scope(user_id, agent_id, run_id),
        }
        return _Call("POST", "/v1/memories", add_result_from_json, body=body)

    def _search(
        self,
        query: str,
        limit: int = 10,
        *,
        strategy: str | None = None,
        filters: SearchFilter | Mapping[str, Any] | None = None,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
    ) -> _Call:
        body = {"query": query, "limit": limit, **_scope(user_id, agent_id, run_id)}
        if strategy is not None:
            body["strategy"] = strategy
        if filters is not None:
            body["filters"] = _filters(filters)
        return _Call(
            "POST",
            "/v1/memories/search",
            lambda d: [hit_from_json(h) for h in d["results"]],
            body=body,
        )

    def _get(self, entry_id: str) -> _Call:
        return _Call("GET", f"/v1/memories/{_id(entry_id)}", entry_from_json, on_missing=(None,))

    def _get_all(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        include_inactive: bool = False,
        offset: int = 0,
    ) -> _Call:
        params = {
            **_scope(user_id, agent_id, run_id),
            "include_inactive": str(include_inactive).lower(),
            "offset": offset,
        }
        return _Call("GET", "/v1/memories", lambda d: d, params=params)

    def _history(self, entry_id: str) -> _Call:
        return _Call(
            "GET", f"/v1/memories/{_id(entry_id)}/history", lambda d: d["results"], on_missing=([],)
        )

    def _update(self, entry_id: str, memory: str, reason: str) -> _Call:
        return _Call(
            "PATCH",
            f"/v1/memories/{_id(entry_id)}",
            entry_from_json,
            body={"memory": memory, "reason": reason},
        )

    def _delete(self, entry_id: str, reason: str) -> _Call:
        return _Call(
            "DELETE", f"/v1/memories/{_id(entry_id)}", lambda d: None, params={"reason": reason}
        )

    def _update_pass(self, steps: list[str], **options: Any) -> _Call:
        return _Call("POST", "/v1/update", lambda d: d, body={"steps": steps, **options})

    def _erase(self, user_id: Any, agent_id: Any, run_id: Any) -> _Call:
        params = _scope(user_id, agent_id, run_id)
        return _Call("DELETE", "/v1/memories", lambda d: d, params=params)

    def _stats(self) -> _Call:
        return _Call("GET", "/v1/stats", lambda d: d)


def _id(entry_id: Any) -> str:
    from urllib.parse import quote

    if not isinstance(entry_id, str) or not entry_id:
        raise InputError(f"entry_id: expected an entry id string, got {type(entry_id).__name__}")
    return quote(entry_id, safe="")


def _headers(api_key: str | None) -> dict[str, str]:
    key = api_key if api_key is not None else os.environ.get(KEY_ENV)
    return {"Authorization": f"Bearer {key}"} if key else {}


def _answer(call: _Call, status: int, data: Any) -> Any:
    if status == 404 and call.on_missing:
        return call.on_missing[0]
    if status >= 400:
        raise _error(status, data)
    return call.decode(data)


def _format(hits: list[SearchHit]) -> list[str]:
    from .memory import format_entry

    return [format_entry(h.entry) for h in hits if h.entry is not None]


class RemoteMemory(_Api):
    """``LightMemory``'s API over HTTP (synchronous). ``api_key`` defaults to
    ``$LIGHTMEM_API_KEY``."""

    def __init__(self, url: str, api_key: str | None = None, *, timeout: float = 60.0) -> None:
        import httpx

        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, headers=_headers(api_key), timeout=timeout)

    def _send(self, call: _Call) -> Any:
        import httpx

        try:
            response = self._http.request(
                call.method, call.path, params=call.params, json=call.body
            )
        except httpx.HTTPError as exc:
            raise LightMemError(f"cannot reach {self.url}: {exc}") from exc
        try:
            data = response.json()
        except ValueError:
            data = response.text
        return _answer(call, response.status_code, data)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RemoteMemory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add_memory(
        self,
        messages: Any,
        force_segment: bool = False,
        force_extract: bool = False,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
    ) -> Any:
        call = self._add_memory(
            messages,
            force_segment,
            force_extract,
            user_id=user_id,
            agent_id=agent_id,
            run_id=run_id,
        )
        return self._send(call)

    def add(
        self,
        messages: Any,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
    ) -> Any:
        return self.add_memory(
            messages, True, True, user_id=user_id, agent_id=agent_id, run_id=run_id
        )

    def flush(
        self, *, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None
    ) -> Any:
        return self.add_memory([], True, True, user_id=user_id, agent_id=agent_id, run_id=run_id)

    def search(
        self,
        query: str,
        limit: int = 10,
        *,
        strategy: str | None = None,
        filters: SearchFilter | Mapping[str, Any] | None = None,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
    ) -> list[SearchHit]:
        call = self._search(
            query,
            limit,
            strategy=strategy,
            filters=filters,
            user_id=user_id,
            agent_id=agent_id,
            run_id=run_id,
        )
        hits: list[SearchHit] = self._send(call)
        return hits

    def retrieve(
        self,
        query: str,
        limit: int = 10,
        filters: SearchFilter | Mapping[str, Any] | None = None,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
    ) -> list[str]:
        hits = self.search(
            query, limit, filters=filters, user_id=user_id, agent_id=agent_id, run_id=run_id
        )
        return _format(hits)

    def get(self, entry_id: str) -> MemoryEntry | None:
        entry: MemoryEntry | None = self._send(self._get(entry_id))
        return entry

    def get_all(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        include_inactive: bool = False,
    ) -> list[MemoryEntry]:
        out: list[MemoryEntry] = []
        while True:
            call = self._get_all(
                user_id=user_id,
                agent_id=agent_id,
                run_id=run_id,
                include_inactive=include_inactive,
                offset=len(out),
            )
            page = self._send(call)
            out += [entry_from_json(e) for e in page["results"]]
            if not page["results"] or len(out) >= page["total"]:
                return out

    def history(self, entry_id: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self._send(self._history(entry_id))
        return rows

    def update(
        self, entry_id: str, memory: str, reason: str = "updated by the application"
    ) -> MemoryEntry:
        entry: MemoryEntry = self._send(self._update(entry_id, memory, reason))
        return entry

    def delete(self, entry_id: str, reason: str = "deleted by the application") -> None:
        self._send(self._delete(entry_id, reason))

    def construct_update_queue_all_entries(self, top_k: int = 20, keep_top_n: int = 10) -> int:
        data = self._send(self._update_pass(["queue"], top_k=top_k, keep_top_n=keep_top_n))
        return int(data["queued"])

    def offline_update_all_entries(self, score_threshold: float = 0.8) -> list[EntryChange]:
        data = self._send(self._update_pass(["offline"], score_threshold=score_threshold))
        return [change_from_json(c) for c in data["changes"]]

    def erase(
        self, *, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None
    ) -> dict[str, Any]:
        """The tenant erase; returns the receipt (counts) as a dict."""
        data: dict[str, Any] = self._send(self._erase(user_id, agent_id, run_id))
        return data

    def stats(self) -> dict[str, Any]:
        data: dict[str, Any] = self._send(self._stats())
        return data

    def get_token_statistics(self) -> dict[str, Any]:
        usage: dict[str, Any] = self.stats()["usage"]
        return usage


class AsyncRemoteMemory(_Api):
    """``AsyncLightMemory``'s API over HTTP. ``api_key`` defaults to ``$LIGHTMEM_API_KEY``."""

    def __init__(self, url: str, api_key: str | None = None, *, timeout: float = 60.0) -> None:
        import httpx

        self.url = url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.url, headers=_headers(api_key), timeout=timeout
        )

    async def _send(self, call: _Call) -> Any:
        import httpx

        try:
            response = await self._http.request(
                call.method, call.path, params=call.params, json=call.body
            )
        except httpx.HTTPError as exc:
            raise LightMemError(f"cannot reach {self.url}: {exc}") from exc
        try:
            data = response.json()
        except ValueError:
            data = response.text
        return _answer(call, response.status_code, data)

    async def open(self) -> AsyncRemoteMemory:
        return self

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncRemoteMemory:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def add_memory(
        self,
        messages: Any,
        force_segment: bool = False,
        force_extract: bool = False,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
    ) -> Any:
        call = self._add_memory(
            messages,
            force_segment,
            force_extract,
            user_id=user_id,
            agent_id=agent_id,
            run_id=run_id,
        )
        return await self._send(call)

    async def add(
        self,
        messages: Any,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
    ) -> Any:
        return await self.add_memory(
            messages, True, True, user_id=user_id, agent_id=agent_id, run_id=run_id
        )

    async def flush(
        self, *, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None
    ) -> Any:
        return await self.add_memory(
            [], True, True, user_id=user_id, agent_id=agent_id, run_id=run_id
        )

    async def search(
        self,
        query: str,
        limit: int = 10,
        *,
        strategy: str | None = None,
        filters: SearchFilter | Mapping[str, Any] | None = None,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
    ) -> list[SearchHit]:
        call = self._search(
            query,
            limit,
            strategy=strategy,
            filters=filters,
            user_id=user_id,
            agent_id=agent_id,
            run_id=run_id,
        )
        hits: list[SearchHit] = await self._send(call)
        return hits

    async def retrieve(
        self,
        query: str,
        limit: int = 10,
        filters: SearchFilter | Mapping[str, Any] | None = None,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
    ) -> list[str]:
        hits = await self.search(
            query, limit, filters=filters, user_id=user_id, agent_id=agent_id, run_id=run_id
        )
        return _format(hits)

    async def get(self, entry_id: str) -> MemoryEntry | None:
        entry: MemoryEntry | None = await self._send(self._get(entry_id))
        return entry

    async def get_all(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        include_inactive: bool = False,
    ) -> list[MemoryEntry]:
        out: list[MemoryEntry] = []
        while True:
            call = self._get_all(
                user_id=user_id,
                agent_id=agent_id,
                run_id=run_id,
                include_inactive=include_inactive,
                offset=len(out),
            )
            page = await self._send(call)
            out += [entry_from_json(e) for e in page["results"]]
            if not page["results"] or len(out) >= page["total"]:
                return out

    async def history(self, entry_id: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = await self._send(self._history(entry_id))
        return rows

    async def update(
        self, entry_id: str, memory: str, reason: str = "updated by the application"
    ) -> MemoryEntry:
        entry: MemoryEntry = await self._send(self._update(entry_id, memory, reason))
        return entry

    async def delete(self, entry_id: str, reason: str = "deleted by the application") -> None:
        await self._send(self._delete(entry_id, reason))

    async def construct_update_queue_all_entries(
        self, top_k: int = 20, keep_top_n: int = 10
    ) -> int:
        data = await self._send(self._update_pass(["queue"], top_k=top_k, keep_top_n=keep_top_n))
        return int(data["queued"])

    async def offline_update_all_entries(self, score_threshold: float = 0.8) -> list[EntryChange]:
        data = await self._send(self._update_pass(["offline"], score_threshold=score_threshold))
        return [change_from_json(c) for c in data["changes"]]

    async def erase(
        self, *, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None
    ) -> dict[str, Any]:
        """The tenant erase; returns the receipt (counts) as a dict."""
        data: dict[str, Any] = await self._send(self._erase(user_id, agent_id, run_id))
        return data

    async def stats(self) -> dict[str, Any]:
        data: dict[str, Any] = await self._send(self._stats())
        return data

    async def get_token_statistics(self) -> dict[str, Any]:
        usage: dict[str, Any] = (await self.stats())["usage"]
        return usage


def connect(url: str, api_key: str | None = None) -> RemoteMemory:
    """A :class:`RemoteMemory` for ``url`` (``api_key`` defaults to ``$LIGHTMEM_API_KEY``)."""
    return RemoteMemory(url, api_key)
