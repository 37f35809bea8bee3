"""The REST service on a real uvicorn on loopback, driven by a real HTTP client (httpx)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")

from lightmem_core import AsyncLightMemory  # noqa: E402
from lightmem_core.client import AsyncRemoteMemory, RemoteMemory  # noqa: E402
from lightmem_core.errors import EmptyScopeError, InputError  # noqa: E402
from lightmem_core.service.app import Limits, create_app  # noqa: E402
from lightmem_core.service.auth import Keys  # noqa: E402
from lightmem_core.service.codec import NotFoundError  # noqa: E402
from lightmem_core.service.loopback import serve_in_thread  # noqa: E402
from lightmem_core.testing.reference import reference_config  # noqa: E402

ALICE, BOB, OPS = "alice-key-0001", "bob-key-00002", "ops-admin-key"
KEYS = {
    ALICE: {"user_ids": ["alice"]},
    # Bob's key is given hashed.
    "sha256:" + hashlib.sha256(BOB.encode()).hexdigest(): {"user_ids": ["bob"]},
    OPS: {"admin": True},
}


def _msg(text, **extra):
    return {"role": "user", "content": text, **extra}


@pytest.fixture
def service(tmp_path, ref_host):
    """(base url, the async memory behind it)."""
    amem = AsyncLightMemory(reference_config(tmp_path / "mem"), host=ref_host)
    limits = Limits(max_body_bytes=64_000, max_messages=20, max_limit=50)
    app = create_app(amem, Keys.parse(KEYS), limits=limits)
    with serve_in_thread(app) as url:
        yield url, amem


def client(url, key=None):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=url, headers=headers, timeout=30)


def _journal(amem):
    return [r.message.content for r in amem.memory.store.journal()]


def test_health_openapi_and_docs_need_no_key(service):
    url, _ = service
    with client(url) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        paths = http.get("/openapi.json").json()["paths"]
        assert {
            "/v1/memories",
            "/v1/memories/search",
            "/v1/memories/{entry_id}",
            "/v1/memories/{entry_id}/history",
            "/v1/update",
            "/v1/stats",
        } <= set(paths)
        assert "swagger" in http.get("/docs").text.lower()


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer nope-nope-nope"}, {"Authorization": f"Basic {ALICE}"}],
)
def test_no_valid_key_is_401(service, headers):
    url, amem = service
    with httpx.Client(base_url=url, headers=headers) as http:
        for method, path, body in [
            ("POST", "/v1/memories", {"messages": [_msg("x")], "user_id": "alice"}),
            ("POST", "/v1/memories/search", {"query": "x", "user_id": "alice"}),
            ("GET", "/v1/memories?user_id=alice", None),
            ("GET", "/v1/memories/abc", None),
            ("GET", "/v1/stats", None),
        ]:
            response = http.request(method, path, json=body)
            assert response.status_code == 401, (path, response.text)
            assert response.headers["www-authenticate"] == "Bearer"
            assert response.json()["error"]["type"] == "AuthError"
    assert _journal(amem) == []


def test_round_trip_of_one_tenant(service):
    url, _ = service
    with client(url, ALICE) as http:
        added = http.post(
            "/v1/memories",
            json={"messages": [_msg("I keep bees in the garden", id="m1")], "force_extract": True},
        ).json()
        assert added["messages_added"] == 1 and len(added["entries_added"]) == 1
        again = http.post(
            "/v1/memories",
            json={"messages": [_msg("I keep bees in the garden", id="m1")], "user_id": "alice"},
        ).json()
        assert again["messages_added"] == 0  # idempotent on message ids
        hits = http.post("/v1/memories/search", json={"query": "bees"}).json()["results"]
        (entry_id,) = [h["id"] for h in hits]
        assert hits[0]["entry"]["user_id"] == "alice"
        listed = http.get("/v1/memories", params={"user_id": "alice"}).json()
        assert listed["total"] == 1 and listed["results"][0]["id"] == entry_id
        patched = http.patch(f"/v1/memories/{entry_id}", json={"memory": "I keep wasps"}).json()
        assert patched["memory"] == "I keep wasps"
        history = http.get(f"/v1/memories/{entry_id}/history").json()["results"]
        assert [h["action"] for h in history] == ["add", "update"]
        assert http.delete(f"/v1/memories/{entry_id}").json() == {"id": entry_id, "deleted": True}
        assert http.delete(f"/v1/memories/{entry_id}").status_code == 409
        assert http.get("/v1/memories").json()["total"] == 0
        inactive = http.get("/v1/memories", params={"include_inactive": "true"}).json()
        assert inactive["results"][0]["status"] == "deleted"


def test_two_tenants_never_cross_on_any_endpoint(service):
    url, amem = service
    with client(url, ALICE) as alice, client(url, BOB) as bob, client(url, OPS) as ops:
        alice.post(
            "/v1/memories",
            json={
                "messages": [_msg("alice secret plan")],
                "user_id": "alice",
                "force_extract": True,
            },
        )
        (entry,) = alice.get("/v1/memories").json()["results"]
        # Scope-named calls across the boundary: 403, worded alike for a scope with data and
        # one without.
        forbidden = [
            bob.post("/v1/memories", json={"messages": [_msg("bob writes")], "user_id": "alice"}),
            bob.post("/v1/memories/search", json={"query": "secret", "user_id": "alice"}),
            bob.post(
                "/v1/memories/search", json={"query": "secret", "filters": {"user_id": "alice"}}
            ),
            bob.get("/v1/memories", params={"user_id": "alice"}),
            bob.get("/v1/memories", params={"user_id": "nobody-has-this"}),
            bob.post("/v1/memories/search", json={"query": "x", "user_id": "nobody-has-this"}),
            bob.get("/v1/stats"),
            bob.post("/v1/update", json={}),
        ]
        assert [r.status_code for r in forbidden] == [403] * len(forbidden)
        assert forbidden[3].json() == forbidden[4].json()
        assert forbidden[1].json() == forbidden[5].json()
        # Id-named calls across the boundary read exactly like a missing id: 404.
        missing = bob.get("/v1/memories/0123456789abcdef").json()
        for response in [
            bob.get(f"/v1/memories/{entry['id']}"),
            bob.patch(f"/v1/memories/{entry['id']}", json={"memory": "bob was here"}),
            bob.delete(f"/v1/memories/{entry['id']}"),
            bob.get(f"/v1/memories/{entry['id']}/history"),
        ]:
            assert response.status_code == 404
            assert response.json()["error"]["type"] == missing["error"]["type"]
        # Bob's own scope is empty; his searches find nothing of Alice's.
        assert bob.post("/v1/memories/search", json={"query": "secret plan"}).json() == {
            "results": []
        }
        # The admin key sees every scope and runs the maintenance calls.
        assert ops.get("/v1/memories", params={"user_id": "alice"}).json()["total"] == 1
        assert ops.get("/v1/stats").json()["entries"]["active"] == 1
        assert ops.post("/v1/update", json={"steps": ["queue"]}).status_code == 200
    assert _journal(amem) == ["alice secret plan"]
    assert amem.memory.get(entry["id"]).memory == "alice secret plan"


BAD_REQUESTS = [
    # (body or raw bytes, status, error type, path)
    (b'{"messages": [', 400, "InputError", "$"),
    (b"not json at all", 400, "InputError", "$"),
    ({"messages": "hello", "user_id": "alice"}, 422, "InputError", "$.messages"),
    (
        {"messages": [{"role": "user", "content": 5}], "user_id": "alice"},
        422,
        "InputError",
        "$.messages[0].content",
    ),
    ({"messages": [_msg("x")], "user_id": 7}, 422, "InputError", "$.user_id"),
    ({"messages": [_msg("x")], "user_id": "alice", "sneaky": 1}, 422, "InputError", "$.sneaky"),
    (
        {"messages": [_msg("x", colour="red")], "user_id": "alice"},
        422,
        "InputError",
        "$.messages[0].colour",
    ),
    ({"messages": [_msg("x")], "user_id": ""}, 422, "EmptyScopeError", "$.user_id"),
    (
        {"messages": [_msg("x")], "user_id": "alice", "agent_id": ""},
        422,
        "EmptyScopeError",
        "$.agent_id",
    ),
    (
        {"messages": [{"role": "wizard", "content": "x"}], "user_id": "alice"},
        422,
        "InputError",
        "$.messages[0].role",
    ),
    ({"messages": [_msg("   ")], "user_id": "alice"}, 422, "InputError", "$.messages[0].content"),
    (
        {"messages": [_msg("x", time_stamp="the day after")], "user_id": "alice"},
        422,
        "InputError",
        "$.messages[0].time_stamp",
    ),
    (
        {"messages": [_msg(f"m{i}") for i in range(21)], "user_id": "alice"},
        413,
        "PayloadTooLargeError",
        "$.messages",
    ),
    ({"messages": [_msg("x" * 70_000)], "user_id": "alice"}, 413, "PayloadTooLargeError", None),
]


@pytest.mark.parametrize(("body", "status", "kind", "path"), BAD_REQUESTS)
def test_bad_input_is_a_typed_4xx_and_stores_nothing(service, body, status, kind, path):
    url, amem = service
    with client(url, ALICE) as http:
        if isinstance(body, bytes):
            response = http.post(
                "/v1/memories", content=body, headers={"Content-Type": "application/json"}
            )
        else:
            response = http.post("/v1/memories", json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["type"] == kind
    assert error["message"]
    assert error.get("path") == path
    assert _journal(amem) == []


def test_more_bad_input(service):
    url, amem = service
    with client(url, ALICE) as http:
        lone = b'{"messages": [{"role": "user", "content": "a\\udcffb"}], "user_id": "alice"}'
        response = http.post(
            "/v1/memories", content=lone, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 422 and "UTF-8" in response.json()["error"]["message"]
        huge = http.post(
            "/v1/memories",
            content=b"[" + b"1," * 40_000 + b"1]",
            headers={"Content-Type": "application/json"},
        )
        assert huge.status_code == 413
        search = http.post("/v1/memories/search", json={"query": "x", "limit": 51})
        assert search.status_code == 422 and search.json()["error"]["path"] == "$.limit"
        assert http.post("/v1/memories/search", json={"query": ""}).status_code == 422
        assert http.get("/v1/memories", params={"limit": 0}).status_code == 422
        for entry_id in ["..%2F..%2Fetc%2Fpasswd", "%00", "x" * 600, "%F0%9F%92%A5"]:
            assert http.get(f"/v1/memories/{entry_id}").status_code == 404
        assert http.get("/v1/memories", params={"user_id": ""}).status_code == 422
    assert _journal(amem) == []
    # Unicode that is valid is kept exactly.
    text = "naïve café — 東京 🐝 \u200d zero-width"
    with client(url, ALICE) as http:
        http.post("/v1/memories", json={"messages": [_msg(text)], "force_extract": True})
        assert http.get("/v1/memories").json()["results"][0]["memory"] == text


def test_an_unexpected_failure_is_a_500_with_a_reference_and_no_body_in_the_log(
    service, monkeypatch, caplog
):
    url, amem = service
    with client(url, ALICE) as http:
        http.get("/healthz")

        def broken(*args, **kwargs):
            raise RuntimeError("the index fell over")

        monkeypatch.setattr(type(amem.memory._retrieval), "search", broken)
        with caplog.at_level(logging.ERROR, logger="lightmem.service"):
            response = http.post("/v1/memories/search", json={"query": "SECRET-QUERY-TEXT"})
    assert response.status_code == 500
    message = response.json()["error"]["message"]
    assert "reference" in message and "SECRET" not in message and "fell over" not in message
    reference = message.split("reference ")[1].rstrip(")")
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert reference in logged
    assert "SECRET-QUERY-TEXT" not in logged


def test_eight_concurrent_clients_lose_and_duplicate_nothing(service):
    url, _ = service
    errors: list[BaseException] = []

    def run(c: int) -> None:
        try:
            with client(url, OPS) as http:
                for n in range(12):
                    body = {
                        "messages": [_msg(f"client {c} fact {n}", id=f"c{c}-{n}")],
                        "user_id": f"u{c % 4}",
                        "force_extract": True,
                    }
                    assert http.post("/v1/memories", json=body).status_code == 200
                    if n % 3 == 0:  # a retried request: nothing twice
                        assert http.post("/v1/memories", json=body).json()["messages_added"] == 0
                    found = http.post(
                        "/v1/memories/search",
                        json={"query": f"client {c} fact {n}", "user_id": f"u{c % 4}"},
                    )
                    assert found.status_code == 200
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(c,)) for c in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    with client(url, OPS) as http:
        texts = []
        for u in range(4):
            texts += [
                e["memory"]
                for e in http.get("/v1/memories", params={"user_id": f"u{u}", "limit": 50}).json()[
                    "results"
                ]
            ]
    assert sorted(texts) == sorted(f"client {c} fact {n}" for c in range(8) for n in range(12))


def test_remote_memory_has_the_embedded_api(service):
    url, amem = service
    with RemoteMemory(url, ALICE) as remote:
        result = remote.add([_msg("my sister lives in Oslo", time_stamp="2024-03-02T09:15:00")])
        assert result.messages_added == 1
        hits = remote.search("sister", user_id="alice")
        assert hits[0].entry.memory == "my sister lives in Oslo"
        assert hits[0].entry.scope.user_id == "alice"
        assert remote.retrieve("sister") == amem.memory.retrieve("sister", user_id="alice")
        entry_id = hits[0].id
        assert remote.get(entry_id) == amem.memory.get(entry_id)
        assert remote.get("no-such-entry") is None
        assert remote.update(entry_id, "my sister lives in Bergen").memory.endswith("Bergen")
        assert [h["action"] for h in remote.history(entry_id)] == ["add", "update"]
        assert [e.id for e in remote.get_all()] == [entry_id]
        remote.delete(entry_id)
        assert remote.get_all() == []
        with pytest.raises(NotFoundError):
            remote.update(entry_id + "x", "nothing")
        with pytest.raises(EmptyScopeError):
            remote.search("x", user_id="")
        with pytest.raises(InputError, match="limit"):
            remote.search("x", limit=0)

    async def main():
        async with AsyncRemoteMemory(url, OPS) as remote:
            await remote.add([_msg("async clients add too")], user_id="bob")
            hits = await remote.search("async clients", user_id="bob")
            return hits, await remote.stats()

    hits, stats = asyncio.run(main())
    assert hits[0].entry.memory == "async clients add too"
    assert stats["entries"]["active"] == 1


def test_keys_file_errors_are_reported_with_paths(tmp_path, monkeypatch):
    from lightmem_core.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        Keys.parse(
            {
                "short": {"user_ids": ["a"]},
                "long-enough-key": {"user_ids": []},
                "another-long-key": {"admin": "yes"},
                "third-long-key": {},
            }
        )
    text = str(err.value)
    assert "at least 8 characters" in text and "non-empty list" in text
    assert "admin: expected true or false" in text and "grants nothing" in text
    monkeypatch.delenv("LIGHTMEM_API_KEYS", raising=False)
    with pytest.raises(ConfigError, match="no API keys"):
        Keys.load(None)
    monkeypatch.setenv("LIGHTMEM_API_KEYS", json.dumps({ALICE: {"user_ids": ["alice"]}}))
    assert Keys.load(None).grant(f"Bearer {ALICE}").user_ids == {"alice"}


def test_the_service_page_runs_as_written(service, capsys):
    """docs/service.md: its keys file parses; its RemoteMemory block runs against the service."""
    import re
    from pathlib import Path

    page = (Path(__file__).resolve().parents[1] / "docs" / "service.md").read_text()
    fences = re.findall(r"^```(\w*)\n(.*?)^```$", page, re.M | re.S)
    (keys_json,) = [body for lang, body in fences if lang == "json"]
    keys = Keys.parse(json.loads(keys_json))
    assert keys.grant("Bearer key-for-alice-app").user_ids == {"alice"}
    assert keys.grant("Bearer ops-admin-key").admin
    (code,) = [body for lang, body in fences if lang == "python"]
    url, _ = service
    code = code.replace("http://127.0.0.1:8765", url).replace("key-for-alice-app", ALICE)
    exec(compile(code, "docs/service.md", "exec"), {})
    assert capsys.readouterr().out.splitlines() == [
        "I adopted a border collie named Biscuit",
        "['add', 'update']",
    ]


def test_erase_a_tenant_over_http(service):
    url, amem = service
    with client(url, ALICE) as alice, client(url, BOB) as bob:
        alice.post(
            "/v1/memories", json={"messages": [_msg("alice likes plums")], "force_extract": True}
        )
        bob.post(
            "/v1/memories", json={"messages": [_msg("bob likes pears")], "force_extract": True}
        )
        assert bob.delete("/v1/memories", params={"user_id": "alice"}).status_code == 403
        assert alice.delete("/v1/memories").status_code == 422  # never "everything"
        assert alice.delete("/v1/memories", params={"user_id": ""}).status_code == 422
        receipt = alice.delete("/v1/memories", params={"user_id": "alice"}).json()
        assert receipt["entries"] == 1 and receipt["messages"] == 1
        assert receipt["scope"] == {"user_id": "alice", "agent_id": None, "run_id": None}
        assert alice.get("/v1/memories").json()["total"] == 0
        assert bob.get("/v1/memories").json()["total"] == 1
    with RemoteMemory(url, BOB) as remote:
        assert remote.erase(user_id="bob")["entries"] == 1
    assert _journal(amem) == []
