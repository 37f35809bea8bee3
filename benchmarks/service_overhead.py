"""What the surfaces cost over an in-process search, at 10 k entries, in one run.

1. In-process ``LightMemory.search`` p50/p95 (A), then ``lightmem serve`` in a subprocess
   searched over HTTP with a keep-alive client (REST), then ``lightmem mcp --transport http``
   searched with the mcp SDK's client (MCP ``search_memory``), then in-process again (A'):
   overhead = surface p50 - mean(A, A') p50. Targets: REST <= 3 ms, MCP <= 5 ms.
2. Through the REST service, 4 clients searching alone (idle) and then the same 4 while 4
   other clients add (loaded): search p95 loaded / idle. Target <= 2.
3. ``AsyncLightMemory``: 100 concurrent ``search`` tasks while a probe measures how late the
   event loop wakes it (every 1 ms). Target: lag <= 20 ms.

The memory is lexical only (sqlite-bm25, no embedder), so the numbers are the surfaces' own
cost, not a model's. Writes ``benchmarks/results/service_overhead.json``.

    nice python benchmarks/service_overhead.py [--entries 10000] [--queries 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import percentile

KEY = "bench-admin-key"
WORDS = [
    "apple",
    "river",
    "garden",
    "sailing",
    "violin",
    "coffee",
    "mountain",
    "winter",
    "letter",
    "doctor",
    "train",
    "market",
    "painting",
    "bicycle",
    "kitchen",
    "holiday",
    "lantern",
    "meadow",
    "pepper",
    "silver",
    "thunder",
    "window",
    "yellow",
    "orchard",
    "harbour",
    "pencil",
    "rabbit",
    "saddle",
    "tomato",
    "velvet",
    "whistle",
]


def _config(root: Path) -> dict[str, Any]:
    return {
        "memory_dir": str(root),
        "retrieve_strategy": "context",
        "context_retriever": {"model_name": "sqlite-bm25"},
        "text_embedder": None,
        "embedding_retriever": None,
        "topic_segment": False,
        "background_retry": False,
    }


def _sentence(rng: random.Random, n: int) -> str:
    return f"note {n}: " + " ".join(rng.choice(WORDS) for _ in range(8))


def _stats(samples: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in samples]
    return {
        "p50_ms": round(percentile(ms, 0.5), 3),
        "p95_ms": round(percentile(ms, 0.95), 3),
        "n": len(ms),
    }


def fill(config: dict[str, Any], entries: int) -> None:
    from lightmem_core import LightMemory

    rng = random.Random(7)
    with LightMemory(config) as mem:
        for start in range(0, entries, 500):
            batch = [
                {"role": "user", "content": _sentence(rng, n)}
                for n in range(start, min(entries, start + 500))
            ]
            mem.add(batch, user_id="bench")
        assert mem.stats()["entries"]["active"] == entries


def in_process(config: dict[str, Any], queries: list[str]) -> tuple[list[float], float]:
    """(wall seconds per search, CPU seconds per search)."""
    from lightmem_core import LightMemory

    with LightMemory(config) as mem:
        for q in queries[:20]:
            mem.search(q, limit=10, user_id="bench")
        samples = []
        cpu = time.process_time()
        for q in queries:
            started = time.perf_counter()
            mem.search(q, limit=10, user_id="bench")
            samples.append(time.perf_counter() - started)
        cpu = time.process_time() - cpu
    return samples, cpu / len(queries)


def _cpu_of(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(args: list[str], url: str) -> subprocess.Popen[bytes]:
    import httpx

    proc = subprocess.Popen(
        [sys.executable, "-m", "lightmem_core.cli", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{args[0]} did not start")


def rest(config_file: Path, keys_file: Path, queries: list[str]) -> dict[str, Any]:
    import httpx

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _start(
        [
            "serve",
            "--config",
            str(config_file),
            "--port",
            str(port),
            "--keys",
            str(keys_file),
            "--log-level",
            "warning",
        ],
        f"{url}/healthz",
    )
    headers = {"Authorization": f"Bearer {KEY}"}
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
            for q in queries[:20]:
                http.post("/v1/memories/search", json={"query": q, "user_id": "bench"})
            samples = []
            server_cpu, client_cpu = _cpu_of(proc.pid), time.process_time()
            for q in queries:
                started = time.perf_counter()
                response = http.post("/v1/memories/search", json={"query": q, "user_id": "bench"})
                samples.append(time.perf_counter() - started)
                assert response.status_code == 200, response.text
            server_cpu = (_cpu_of(proc.pid) - server_cpu) / len(queries)
            client_cpu = (time.process_time() - client_cpu) / len(queries)
        idle = _searchers(url, headers, queries, adders=0)
        loaded = _searchers(url, headers, queries, adders=4)
    finally:
        proc.terminate()
        proc.wait(30)
    return {
        "search": samples,
        "idle": idle,
        "loaded": loaded,
        "server_cpu": server_cpu,
        "client_cpu": client_cpu,
    }


def _searchers(url: str, headers: dict[str, str], queries: list[str], adders: int) -> list[float]:
    import httpx

    samples: list[float] = []
    lock = threading.Lock()
    done = threading.Event()

    def search(offset: int) -> None:
        with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
            for q in queries[offset::4][:75]:
                started = time.perf_counter()
                http.post("/v1/memories/search", json={"query": q, "user_id": "bench"})
                with lock:
                    samples.append(time.perf_counter() - started)

    def add(n: int) -> None:
        rng = random.Random(n)
        with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
            i = 0
            while not done.is_set():
                body = {
                    "messages": [{"role": "user", "content": _sentence(rng, 10**6 + i)}],
                    "user_id": f"adder{n}",
                    "force_extract": True,
                }
                assert http.post("/v1/memories", json=body).status_code == 200
                i += 1

    adding = [threading.Thread(target=add, args=(n,)) for n in range(adders)]
    searching = [threading.Thread(target=search, args=(n,)) for n in range(4)]
    for t in adding:
        t.start()
    time.sleep(0.5 if adders else 0)
    for t in searching:
        t.start()
    for t in searching:
        t.join()
    done.set()
    for t in adding:
        t.join()
    return samples


def mcp(config_file: Path, keys_file: Path, queries: list[str]) -> list[float]:
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    port = _free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    proc = _start(
        [
            "mcp",
            "--transport",
            "http",
            "--config",
            str(config_file),
            "--port",
            str(port),
            "--keys",
            str(keys_file),
        ],
        f"http://127.0.0.1:{port}/",
    )

    async def run() -> list[float]:
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {KEY}"}, timeout=60)
        async with Client(streamable_http_client(url, http_client=http)) as client:
            for q in queries[:20]:
                await client.call_tool("search_memory", {"query": q, "user_id": "bench"})
            samples = []
            for q in queries:
                started = time.perf_counter()
                result = await client.call_tool("search_memory", {"query": q, "user_id": "bench"})
                samples.append(time.perf_counter() - started)
                assert not result.is_error, result
            return samples

    try:
        return asyncio.run(run())
    finally:
        proc.terminate()
        proc.wait(30)


def loop_lag(
    config: dict[str, Any], queries: list[str], tasks: int, workers: int
) -> dict[str, Any]:
    from lightmem_core import AsyncLightMemory

    async def run() -> dict[str, Any]:
        async with AsyncLightMemory(config, workers=workers) as mem:
            await mem.search("warm up", user_id="bench")
            lags: list[float] = []
            stop = asyncio.Event()

            async def probe() -> None:
                while not stop.is_set():
                    started = time.perf_counter()
                    await asyncio.sleep(0.001)
                    lags.append(time.perf_counter() - started - 0.001)

            prober = asyncio.create_task(probe())
            started = time.perf_counter()
            results = await asyncio.gather(
                *(mem.search(queries[i % len(queries)], user_id="bench") for i in range(tasks))
            )
            wall = time.perf_counter() - started
            stop.set()
            await prober
            assert all(results)
            return {
                "tasks": tasks,
                "workers": workers,
                "wall_s": round(wall, 3),
                "max_lag_ms": round(max(lags) * 1000, 3),
                "p99_lag_ms": round(percentile(lags, 0.99) * 1000, 3),
                "probes": len(lags),
            }

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--out", default="benchmarks/results/service_overhead.json")
    args = parser.parse_args()
    rng = random.Random(11)
    queries = [" ".join(rng.sample(WORDS, 3)) for _ in range(args.queries)]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        config = _config(root / "mem")
        config_file = root / "config.json"
        config_file.write_text(json.dumps(config))
        keys_file = root / "keys.json"
        keys_file.write_text(json.dumps({KEY: {"admin": True}}))
        started = time.perf_counter()
        fill(config, args.entries)
        filled = time.perf_counter() - started
        a1, cpu1 = in_process(config, queries)
        served = rest(config_file, keys_file, queries)
        over_mcp = mcp(config_file, keys_file, queries)
        a2, cpu2 = in_process(config, queries)
        lags = [loop_lag(config, queries, args.tasks, w) for w in (16, 4, 16, 4)]
    base = (percentile(a1, 0.5) + percentile(a2, 0.5)) / 2
    report = {
        "entries": args.entries,
        "fill_s": round(filled, 1),
        "cpus": os.cpu_count(),
        "in_process_before": _stats(a1),
        "in_process_after": _stats(a2),
        "rest_search": _stats(served["search"]),
        "mcp_search_memory": _stats(over_mcp),
        "rest_overhead_p50_ms": round((percentile(served["search"], 0.5) - base) * 1000, 3),
        # CPU time per search (less sensitive to other processes on a shared machine than wall
        # time): the in-process search, and the REST server's plus the HTTP client's.
        "in_process_cpu_ms": round((cpu1 + cpu2) / 2 * 1000, 3),
        "rest_server_cpu_ms": round(served["server_cpu"] * 1000, 3),
        "rest_client_cpu_ms": round(served["client_cpu"] * 1000, 3),
        "rest_overhead_cpu_ms": round(
            (served["server_cpu"] + served["client_cpu"] - (cpu1 + cpu2) / 2) * 1000, 3
        ),
        "mcp_overhead_p50_ms": round((percentile(over_mcp, 0.5) - base) * 1000, 3),
        "rest_4_searchers_idle": _stats(served["idle"]),
        "rest_4_searchers_with_4_adders": _stats(served["loaded"]),
        "loaded_over_idle_p95": round(
            percentile(served["loaded"], 0.95) / percentile(served["idle"], 0.95), 2
        ),
        "async_concurrent_searches": lags,
        "targets": {
            "rest_overhead_p50_ms": 3,
            "mcp_overhead_p50_ms": 5,
            "loaded_over_idle_p95": 2,
            "max_lag_ms": 20,
        },
    }
    print(json.dumps(report, indent=2))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
