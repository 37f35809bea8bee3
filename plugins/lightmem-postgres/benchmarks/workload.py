"""Many writers and readers on one Postgres memory: the workload of ``load.py`` and of
``tests/test_many_writers.py``.

Writer processes run threads; each thread adds LoCoMo sessions (one ``add_memory`` per session,
extracted at once) under its own user id, through the ``openai`` memory manager answered by the
scripted model on a loopback server with a fixed latency. Searcher processes search random
questions under random users of the run and count any hit of another scope. ``verify`` then
checks the memory: every message sent is journaled once, every entry comes from messages of
its own scope, no message was extracted twice, nothing is left unextracted.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import random
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def memory_config(dsn: str, schema: str, llm_url: str, memory_dir: str) -> dict[str, Any]:
    server = {"dsn": dsn, "schema": schema, "pool_max_size": 4}
    return {
        "memory_dir": memory_dir,
        "text_embedder": {"model_name": "hash"},
        "retrieve_strategy": "hybrid",
        "record_store": {"model_name": "postgres", "configs": server},
        "embedding_retriever": {"model_name": "pgvector", "configs": server},
        "context_retriever": {"model_name": "postgres-fts", "configs": server},
        "memory_manager": {
            "model_name": "openai",
            "configs": {"model": "scripted", "openai_base_url": llm_url, "max_tokens": 16000},
        },
        "update": "offline",
    }


def host() -> Any:
    import lightmem_openai.plugin as openai_plugin
    import lightmem_postgres.plugin as postgres_plugin

    from lightmem_core.testing import fresh_host
    from lightmem_core.testing.reference import ReferencePlugin

    return fresh_host(ReferencePlugin(), postgres_plugin, openai_plugin)


def sessions(data: str, sample: int, count: int) -> list[list[dict[str, Any]]]:
    from lightmem_core.datasets import locomo_conversation

    samples = json.loads(Path(data).read_text(encoding="utf-8"))
    conv = locomo_conversation(samples[sample % len(samples)], where=f"sample {sample}")
    return [list(s.messages) for s in conv.sessions[:count]]


def user_of(process: int, thread: int, tag: str) -> str:
    return f"{tag}-p{process}-t{thread}"


def _write(mem: Any, sessions_: list[list[dict[str, Any]]], user: str) -> int:
    sent = 0
    for messages in sessions_:
        mem.add_memory(messages, force_segment=True, force_extract=True, user_id=user)
        sent += len(messages)
    return sent


def writer_process(
    config: Mapping[str, Any],
    data: str,
    n_sessions: int,
    process: int,
    threads: int,
    tag: str,
    start: Any,
    out: Any,
    warm: bool = True,
) -> None:
    """``threads`` threads, each with its own LightMemory and user, then ``(process, sent)``.

    Each thread's memory is opened and its sessions read before the start, and, with
    ``warm``, has added one conversation of two turns under a user of its own (``<user>-warm``,
    not counted): what a worker process does once in its life (importing the model's client,
    loading the tokenizer's tables, opening the indexes; about 0.6 s of CPU) is then outside
    the timing, which measures the adding alone. Its CPU is reported as ``warm_cpu_s``."""
    from lightmem_core import LightMemory

    sent: dict[str, int] = {}
    errors: list[str] = []
    users = [user_of(process, t, tag) for t in range(threads)]
    work = [sessions(data, process * threads + t, n_sessions) for t in range(threads)]
    mems = [LightMemory(dict(config), host=host()) for _ in range(threads)]
    warm_cpu = time.process_time()
    if warm:
        for mem, user, sessions_ in zip(mems, users, work, strict=True):
            _write(mem, [sessions_[0][:2]], f"{user}-warm")
    warm_cpu = time.process_time() - warm_cpu
    start.wait(300)
    cpu = time.process_time()

    def run(thread: int) -> None:
        user = users[thread]
        try:
            sent[user] = _write(mems[thread], work[thread], user)
        except Exception as exc:  # reported to the parent, which fails the run
            errors.append(f"{user}: {type(exc).__name__}: {exc}")

    workers = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    cpu = time.process_time() - cpu
    out.put(
        {"process": process, "sent": sent, "errors": errors, "cpu_s": cpu, "warm_cpu_s": warm_cpu}
    )
    for mem in mems:
        mem.close()


def searcher_process(
    config: Mapping[str, Any],
    users: list[str],
    stop: Any,
    start: Any,
    out: Any,
    rate: float = 0.0,
) -> None:
    """Search random questions under random users until ``stop`` (at most ``rate`` searches a
    second when given, waiting on ``stop`` in between); count foreign hits."""
    from lightmem_core import LightMemory

    rng = random.Random(len(users))
    queries = ["where did she travel", "what does he paint", "her job", "the support group"]
    searches = crossed = 0
    latencies: list[float] = []
    with LightMemory(dict(config), host=host()) as mem:
        start.wait(300)
        began = time.monotonic()
        while not stop.is_set():
            if rate > 0 and stop.wait(max(0.0, began + searches / rate - time.monotonic())):
                break
            user = rng.choice(users)
            t0 = time.perf_counter()
            hits = mem.search(rng.choice(queries), limit=10, user_id=user)
            latencies.append(time.perf_counter() - t0)
            searches += 1
            crossed += sum(1 for h in hits if h.entry is not None and h.entry.scope.user_id != user)
    out.put({"searches": searches, "crossed": crossed, "latencies": latencies})


def run(
    config: Mapping[str, Any],
    data: str,
    *,
    processes: int,
    threads: int,
    n_sessions: int,
    searchers: int,
    tag: str,
    search_rate: float = 0.0,
    warm: bool = True,
) -> dict[str, Any]:
    """One phase: start everyone together; returns the timing and what the workers reported."""
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(processes + searchers + 1)
    stop = ctx.Event()
    out = ctx.Queue()
    users = [user_of(p, t, tag) for p in range(processes) for t in range(threads)]
    writers = [
        ctx.Process(
            target=writer_process,
            args=(config, data, n_sessions, p, threads, tag, start, out, warm),
        )
        for p in range(processes)
    ]
    readers = [
        ctx.Process(target=searcher_process, args=(config, users, stop, start, out, search_rate))
        for _ in range(searchers)
    ]
    for p in writers + readers:
        p.start()
    start.wait(300)
    server_cpu = server_cpu_seconds(config["record_store"]["configs"]["dsn"])
    here = time.process_time()  # this process: the scripted model's server threads
    t0 = time.perf_counter()
    written = [out.get(timeout=1800) for _ in writers]
    elapsed = time.perf_counter() - t0
    here = time.process_time() - here
    server_cpu = server_cpu_seconds(config["record_store"]["configs"]["dsn"]) - server_cpu
    stop.set()
    searched = [out.get(timeout=300) for _ in readers]
    for p in writers + readers:
        p.join(120)
    sent = {u: n for w in written for u, n in w["sent"].items()}
    return {
        "processes": processes,
        "threads": threads,
        "searchers": searchers,
        "seconds": elapsed,
        "turns": sum(sent.values()),
        "turns_per_s": sum(sent.values()) / elapsed if elapsed else 0.0,
        "sent": sent,
        "errors": [e for w in written for e in w["errors"]],
        "searches": sum(s["searches"] for s in searched),
        "crossed": sum(s["crossed"] for s in searched),
        "search_latencies": [x for s in searched for x in s["latencies"]],
        "exit_codes": [p.exitcode for p in writers + readers],
        # CPU seconds while the writers wrote: theirs (each process's own), and the server's
        # (every Postgres process on this machine, the searchers' work included)
        "writer_cpu_s": sum(w["cpu_s"] for w in written),
        "writer_warm_cpu_s": sum(w["warm_cpu_s"] for w in written),
        "server_cpu_s": server_cpu,
        "llm_server_cpu_s": here,
    }


def server_cpu_seconds(dsn: str) -> float:
    """CPU seconds used so far by the Postgres server at ``dsn`` when it runs on this machine
    (the postmaster, its live processes, and those that ended): NaN when it cannot be read."""
    import psutil
    import psycopg

    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        try:
            postmaster = psutil.Process(int(row[0])).parent() if row else None
        except psutil.Error:
            return float("nan")
    try:
        if postmaster is None or "postgres" not in postmaster.name():
            return float("nan")  # a server elsewhere (the pid is another machine's)
        t = postmaster.cpu_times()
        total = t.user + t.system + t.children_user + t.children_system
        for child in postmaster.children():
            with contextlib.suppress(psutil.Error):
                c = child.cpu_times()
                total += c.user + c.system
        return total
    except psutil.Error:
        return float("nan")


def verify(store: Any, sent: Mapping[str, int]) -> dict[str, int]:
    """Lost, duplicated and cross-scope counts over the users of ``sent``."""
    from lightmem_hookspecs import Scope

    lost = duplicated = crossed = unextracted = 0
    for user, n in sent.items():
        scope = Scope(user_id=user)
        journal = store.journal(scope=scope)
        ids = [r.message.id for r in journal]
        lost += max(0, n - len(set(ids)))
        duplicated += len(ids) - len(set(ids))
        unextracted += sum(1 for r in journal if r.state not in ("extracted", "dropped"))
        sources: list[str] = []
        for entry in store.entries(scope=scope, status=None):
            if entry.scope != scope:
                crossed += 1
            known = store.messages_by_id(entry.source_message_ids, scope=scope)
            crossed += len(set(entry.source_message_ids) - set(known))
            sources += list(entry.source_message_ids)
        duplicated += len(sources) - len(set(sources))  # a message extracted twice
    return {
        "lost": lost,
        "duplicated": duplicated,
        "cross_scope": crossed,
        "unextracted": unextracted,
    }


def delayed_responder(latency: float) -> Any:
    from lightmem_core.eval.economy import scripted_responder

    def answer(body: Mapping[str, Any]) -> str:
        time.sleep(latency)
        return scripted_responder(body)

    return answer


# -- child processes of the plugin's tests (spawned: they must live in an importable module) ---


def add_and_hang(config: dict[str, Any], messages: list[dict[str, Any]]) -> None:
    """Add ``messages`` for the user ``victim``; the test kills this process mid-extraction."""
    from lightmem_core import LightMemory

    with LightMemory(config, host=host()) as mem:
        mem.add_memory(messages, force_segment=True, force_extract=True, user_id="victim")


def add_then_search(config: dict[str, Any], user: str, out: Any) -> None:
    """Add one fact for ``user`` (no LLM: the message is the entry), then put on ``out`` how
    many hits a search of that user finds."""
    import lightmem_postgres.plugin as postgres_plugin

    from lightmem_core import LightMemory
    from lightmem_core.testing import fresh_host
    from lightmem_core.testing.reference import ReferencePlugin

    with LightMemory(config, host=fresh_host(ReferencePlugin(), postgres_plugin)) as mem:
        mem.add_memory(
            [{"role": "user", "content": f"{user} keeps bees on the roof"}],
            force_segment=True,
            force_extract=True,
            user_id=user,
        )
        out.put(len(mem.search("bees", limit=5, user_id=user)))
