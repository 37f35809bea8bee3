"""One operation tree: each top-level operation's usage, nested work included, is booked into
the record store once by the core's own ``lightmem_run_operation`` wrapper, and nothing reads the
usage table back to measure a batch."""

from __future__ import annotations

import attrs
import pytest
from lightmem_hookspecs import Usage, hookimpl

from lightmem_core import LightMemory
from lightmem_core.errors import InputError, UnexpectedError
from lightmem_core.testing import fresh_host
from lightmem_core.testing.reference import ReferencePlugin


def _turns(n: int, first: int = 0) -> list[dict]:
    return [
        {
            "role": "user",
            "content": f"note {i}: the bakery on Rua Nova opens at {i % 12 + 1} on weekdays",
            "time_stamp": "2024-03-02T09:00:00",
        }
        for i in range(first, first + n)
    ]


class Watcher:
    """A hook plugin that keeps every top-level operation it sees."""

    def __init__(self) -> None:
        self.top: list = []

    @hookimpl(wrapper=True)
    def lightmem_run_operation(self, operation, context):
        result = yield
        if operation.parent is None:
            self.top.append(operation)
        return result


@pytest.fixture
def watched(scripted_config, llm):
    import lightmem_core.builtin as builtin

    watcher = Watcher()
    host = fresh_host(builtin, ReferencePlugin(memory_manager=llm))
    host.register(watcher, "watcher")
    config = {**scripted_config, "hooks": [{"plugin": "watcher"}], "update": "online"}
    return config, host, watcher


def _recording(mem: LightMemory, monkeypatch) -> list[tuple[str, Usage]]:
    writes: list[tuple[str, Usage]] = []
    store = mem.store
    original = store.add_usage

    def add_usage(operation: str, usage: Usage) -> None:
        writes.append((operation, Usage(**attrs.asdict(usage))))
        original(operation, usage)

    def usage_read_back() -> dict:
        raise AssertionError("the usage table was read back during an operation")

    monkeypatch.setattr(store, "add_usage", add_usage)
    monkeypatch.setattr(store, "usage", usage_read_back)
    return writes


def test_an_add_books_its_operation_tree_once_split_by_phase(watched, monkeypatch):
    config, host, watcher = watched
    with LightMemory(config, host=host) as mem:
        mem.add(_turns(4))  # something older for the online update to compare with
        writes = _recording(mem, monkeypatch)
        watcher.top.clear()
        result = mem.add(_turns(4, first=4))
        monkeypatch.undo()
        (top,) = [op for op in watcher.top if op.name == "add_memory"]
        # one write per booked phase of this one top-level operation, none per call
        names = [name for name, _ in writes]
        assert len(names) == len(set(names)) and "extract" in names
        assert set(names) <= {"add_memory", "extract", "update"}
        total = Usage()
        for _, usage in writes:
            total.add(usage)
        assert total == top.usage == result.usage
        assert top.usage.llm_calls >= 1 and top.usage.embedder_calls >= 1
        stats = mem.get_token_statistics()["by_operation"]
        assert stats["extract"]["llm_calls"] == 2  # one extraction call per add


def test_a_search_is_booked_once_under_retrieve(watched, monkeypatch):
    config, host, _ = watched
    with LightMemory(config, host=host) as mem:
        mem.add(_turns(3))
        mem.search("warm-up")  # flushes queued vectors
        writes = _recording(mem, monkeypatch)
        mem.search("when does the bakery open")
        monkeypatch.undo()
        assert [name for name, _ in writes] == ["retrieve"]
        assert writes[0][1].embedded_texts == 1


def test_a_failed_batch_counts_what_its_call_spent(watched, llm, monkeypatch):
    from lightmem_core.testing.scripted import Fault

    config, host, _ = watched
    config = {**config, "background_retry": False, "update": "offline"}
    with LightMemory(config, host=host) as mem:
        writes = _recording(mem, monkeypatch)
        llm.queue(Fault.http_error(503))
        result = mem.add(_turns(2))
        monkeypatch.undo()
        assert result.batches_pending == 1
        assert dict(writes)["extract"].llm_calls == 1  # the failed call is booked


def test_run_operation_books_an_applications_own_work(watched):
    config, host, watcher = watched
    with LightMemory(config, host=host) as mem:
        mem.add(_turns(2))
        answer = mem.run_operation(
            "qa_answer", lambda: mem.llm.complete([{"role": "user", "content": "hi"}]).text
        )
        assert isinstance(answer, str)
        assert watcher.top[-1].name == "qa_answer"
        assert mem.get_token_statistics()["by_operation"]["qa_answer"]["llm_calls"] == 1
        with pytest.raises(InputError):
            mem.run_operation("", lambda: None)


def test_without_hook_plugins_the_core_books_as_pluggy_would(watched, llm, tmp_path):
    """With no hook plugin selected the core runs its own wrapper itself (no hook call per
    operation): the books, the operation tree and a failing operation's error are the same."""
    config, host, _ = watched
    books = []
    for i, hooks in enumerate(([{"plugin": "watcher"}], [])):
        own = {**config, "hooks": hooks, "memory_dir": str(tmp_path / f"m{i}")}
        with LightMemory(own, host=host) as mem:
            assert (mem.hooks._core_wrappers is None) == bool(hooks)
            mem.add(_turns(4))
            mem.add(_turns(4, first=4))
            mem.search("when does the bakery open")
            spent = mem.run_operation(
                "qa_answer", lambda: mem.llm.complete([{"role": "user", "content": "hi"}]).text
            )
            assert isinstance(spent, str)

            def fails() -> None:
                mem.llm.complete([{"role": "user", "content": "again"}])
                raise KeyError("the application's own error")

            with pytest.raises(UnexpectedError, match="own error"):
                mem.run_operation("qa_answer", fails)
            books.append(mem.get_token_statistics()["by_operation"])
    with_plugin, core_only = books
    assert core_only == with_plugin
    assert core_only["qa_answer"]["llm_calls"] == 2  # the failed one's call is booked too
    assert core_only["retrieve"]["embedded_texts"] == 1
