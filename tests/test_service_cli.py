"""`lightmem serve` as a user runs it (a subprocess on real plugins), and `--url` commands."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
pytest.importorskip("lightmem_bm25", reason="the BM25 plugin is not installed")

KEY = "cli-test-key-1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def lightmem(*args, env=None, check=True):
    return subprocess.run(
        [sys.executable, "-m", "lightmem_core.cli", *args],
        capture_output=True,
        text=True,
        check=check,
        env=env,
        timeout=120,
    )


@pytest.fixture
def served(tmp_path):
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
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({KEY: {"user_ids": ["alice"]}}))
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lightmem_core.cli",
            "serve",
            "--config",
            str(config),
            "--port",
            str(port),
            "--keys",
            str(keys),
            "--log-level",
            "warning",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"lightmem serve did not start: {proc.communicate()[1]}")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


def test_serve_then_search_and_stats_with_url(served):
    headers = {"Authorization": f"Bearer {KEY}"}
    body = {
        "messages": [{"role": "user", "content": "the spare key is under the blue pot"}],
        "force_extract": True,
    }
    assert httpx.post(f"{served}/v1/memories", json=body, headers=headers).status_code == 200
    out = lightmem("search", "spare key", "--url", served, "--api-key", KEY, "--json")
    hits = json.loads(out.stdout)
    assert hits[0]["memory"] == "the spare key is under the blue pot"
    # The key is not an admin: the whole memory's stats are refused, with the reason.
    denied = lightmem("stats", "--url", served, "--api-key", KEY, check=False)
    assert denied.returncode == 2 and "admin" in denied.stderr
    anonymous = lightmem(
        "search", "spare key", "--url", served, check=False, env={"PATH": "/usr/bin:/bin"}
    )
    assert anonymous.returncode == 2 and "API key" in anonymous.stderr


def test_add_with_url(served, tmp_path):
    sessions = tmp_path / "chat.json"
    sessions.write_text(
        json.dumps([{"role": "user", "content": "the boat is moored at pier nine"}])
    )
    out = lightmem("add", str(sessions), "--url", served, "--api-key", KEY, "--user-id", "alice")
    assert "1 new memories" in out.stdout
    found = lightmem("search", "pier nine", "--url", served, "--api-key", KEY, "--json")
    assert json.loads(found.stdout)[0]["memory"] == "the boat is moored at pier nine"
    refused = lightmem(
        "add", str(sessions), "--url", served, "--api-key", KEY, "--user-id", "mallory", check=False
    )
    assert refused.returncode == 2 and "not granted" in refused.stderr


def test_serve_refuses_to_start_without_keys(tmp_path):
    out = lightmem(
        "serve",
        "--memory-dir",
        str(tmp_path / "m"),
        "--port",
        "1",
        check=False,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 2
    assert "no API keys" in out.stderr
