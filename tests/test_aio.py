"""``AsyncLightMemory``: the public API as coroutines, many tasks at once, the loop free."""

from __future__ import annotations

import asyncio
import inspect
import re
import threading
import time
from pathlib import Path

import pytest
from lightmem_hookspecs import Scope

from lightmem_core import AsyncLightMemory, LightMemory
from lightmem_core.errors import EmptyScopeError, InputError
from lightmem_core.testing.reference import HashEmbedder, reference_config

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "async.md"

#: Sync members with no coroutine twin, and why.
NOT_AWAITED = {
    "plan": "returns a plan object that spends nothing and writes nothing",
    "from_config": "a class method building the memory (AsyncLightMemory has its own)",
}


def _msg(text: str, **extra):
    return {"role": "user", "content": text, **extra}


@pytest.fixture
def amem(tmp_path, ref_host):
    mem = AsyncLightMemory(reference_config(tmp_path / "mem"), host=ref_host)
    yield mem
    if not mem._closed:
        asyncio.run(mem.close())


def test_every_public_call_of_the_sync_api_has_a_coroutine_with_the_same_parameters():
    for name, member in vars(LightMemory).items():
        if name.startswith("_") or isinstance(member, property) or name in NOT_AWAITED:
            continue
        twin = getattr(AsyncLightMemory, name, None)
        assert twin is not None, f"AsyncLightMemory has no {name}"
        assert inspect.iscoroutinefunction(twin), name
        sync_params = list(inspect.signature(member).parameters.values())
        async_params = list(inspect.signature(twin).parameters.values())
        assert [(p.name, p.kind, p.default) for p in sync_params] == [
            (p.name, p.kind, p.default) for p in async_params
        ], name


def test_adds_of_one_scope_apply_in_call_order_while_scopes_interleave(amem):
    users = [f"user{u}" for u in range(5)]

    async def main():
        async with amem:
            calls = [
                amem.add_memory([_msg(f"fact {n} of {user}", id=f"{user}-{n}")], user_id=user)
                for n in range(12)
                for user in users
            ]
            await asyncio.gather(*calls)
            store = amem.memory.store
            return {u: [r.message.id for r in store.journal(None, Scope(u))] for u in users}

    order = asyncio.run(main())
    for user in users:
        assert order[user] == [f"{user}-{n}" for n in range(12)]


def test_entry_writes_apply_in_call_order(amem):
    async def main():
        async with amem:
            await amem.add([_msg("the door code is 1000")], user_id="ana")
            (entry,) = await amem.get_all(user_id="ana")
            await asyncio.gather(
                *(amem.update(entry.id, f"the door code is {1000 + n}") for n in range(1, 21))
            )
            history = await amem.history(entry.id)
            return history, await amem.get(entry.id)

    history, final = asyncio.run(main())
    updates = [h["new_memory"] for h in history if h["action"] == "update"]
    assert updates == [f"the door code is {1000 + n}" for n in range(1, 21)]
    assert final.memory == "the door code is 1020"


def test_the_loop_runs_while_a_call_works(amem, monkeypatch):
    """A slow embedding (a blocking sleep in the backend) must not stop the event loop."""
    slow_started = threading.Event()
    embed = HashEmbedder.embed

    def slow(self, texts):
        slow_started.set()
        time.sleep(0.3)
        return embed(self, texts)

    async def main():
        async with amem:
            await amem.add([_msg("slow searches still answer")], user_id="ana")
            monkeypatch.setattr(HashEmbedder, "embed", slow)
            ticks = 0

            async def ticker():
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.01)
                    ticks += 1

            task = asyncio.create_task(ticker())
            hits = await asyncio.gather(
                *(amem.search(f"slow question {n}", user_id="ana") for n in range(4))
            )
            task.cancel()
            return ticks, hits

    ticks, hits = asyncio.run(main())
    assert slow_started.is_set()
    assert all(h and h[0].entry.memory == "slow searches still answer" for h in hits)
    # Blocked, the loop would tick at most once per search; it ticks through the sleeps.
    assert ticks >= 20


def test_many_concurrent_tasks_lose_and_duplicate_nothing(amem):
    async def main():
        async with amem:

            async def client(c: int) -> int:
                found = 0
                for n in range(10):
                    await amem.add([_msg(f"client {c} note {n}", id=f"c{c}-n{n}")], user_id="u")
                    found += len(await amem.search(f"client {c} note", user_id="u", limit=3))
                    # the same message again: idempotent
                    await amem.add([_msg(f"client {c} note {n}", id=f"c{c}-n{n}")], user_id="u")
                return found

            found = await asyncio.gather(*(client(c) for c in range(8)))
            return found, await amem.get_all(user_id="u")

    found, entries = asyncio.run(main())
    texts = sorted(e.memory for e in entries)
    assert texts == sorted(f"client {c} note {n}" for c in range(8) for n in range(10))
    assert all(f > 0 for f in found)


def test_errors_are_the_sync_apis_and_nothing_is_written(amem):
    async def main():
        async with amem:
            with pytest.raises(EmptyScopeError):
                await amem.add([_msg("x")], user_id="")
            with pytest.raises(InputError, match=r"messages\[0\]"):
                await amem.add([{"role": "user"}], user_id="a")
            with pytest.raises(InputError, match="limit"):
                await amem.search("x", limit=0)
            return amem.memory.store.journal()

    assert asyncio.run(main()) == []


def test_close_waits_for_started_calls_and_refuses_new_ones(amem):
    async def main():
        await amem.open()
        adds = [asyncio.create_task(amem.add([_msg(f"note {n}")], user_id="a")) for n in range(5)]
        await asyncio.sleep(0)
        await amem.close()
        results = await asyncio.gather(*adds)
        with pytest.raises(InputError, match="closed"):
            await amem.search("note")
        return results

    results = asyncio.run(main())
    assert [r.messages_added for r in results] == [1] * 5


def test_wrap_puts_an_open_memory_behind_the_async_api(make_memory):
    mem = make_memory()
    mem.add([_msg("wrapped memories answer too")], user_id="a")

    async def main():
        async with AsyncLightMemory.wrap(mem) as amem:
            return await amem.retrieve("wrapped", user_id="a")

    assert asyncio.run(main())[0].endswith("wrapped memories answer too")


_FENCE = re.compile(r"^```python\n(.*?)^```$", re.M | re.S)


def test_the_async_page_runs_as_written(tmp_path, ref_host, monkeypatch, capsys):
    """docs/async.md's blocks, in order, on the reference backends instead of the defaults."""
    original = AsyncLightMemory.from_config.__func__

    def from_config(cls, config=None, **kwargs):
        config = {**reference_config(tmp_path / "unused"), **dict(config or {})}
        return original(cls, config, host=ref_host, **kwargs)

    monkeypatch.setattr(AsyncLightMemory, "from_config", classmethod(from_config))
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in _FENCE.findall(PAGE.read_text()):
        exec(compile(block, str(PAGE), "exec"), namespace)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "I adopted a border collie named Biscuit"
    assert "Biscuit" in out[1]
    assert out[2:] == ["ana 2", "rui 2", "eva 2"]
