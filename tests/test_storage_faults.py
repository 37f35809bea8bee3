"""Storage faults: a damaged record store is refused with a typed error naming the file, and
never written over."""

from __future__ import annotations

from pathlib import Path

import pytest

from lightmem_core import LightMemory
from lightmem_core.errors import StoreError

TURNS = [{"role": "user", "content": f"fact number {i} about my garden"} for i in range(40)]


def _store_file(make_memory):
    mem = make_memory()
    mem.add_memory(TURNS, force_extract=True)
    path = mem.config.db_path
    config = mem.config
    mem.close()
    return path, config


def test_a_zero_byte_record_store_is_refused_and_left_as_it_is(make_memory, ref_host):
    path, config = _store_file(make_memory)
    path.write_bytes(b"")
    for side in ("-wal", "-shm"):
        path.with_name(path.name + side).unlink(missing_ok=True)
    with pytest.raises(StoreError, match="empty file") as info:
        LightMemory(config, host=ref_host)
    assert str(path) in str(info.value)
    assert path.stat().st_size == 0  # never written over


def test_a_truncated_record_store_is_refused_and_left_as_it_is(make_memory, ref_host):
    path, config = _store_file(make_memory)
    data = path.read_bytes()
    assert len(data) > 4096 * 2
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(StoreError, match="truncated") as info:
        LightMemory(config, host=ref_host)
    assert str(path) in str(info.value)
    assert path.read_bytes() == data[: len(data) // 2]


def test_a_file_that_is_not_sqlite_is_refused(make_memory, ref_host):
    path, config = _store_file(make_memory)
    path.write_bytes(b"not a database at all" * 100)
    with pytest.raises(StoreError, match="not a SQLite database"):
        LightMemory(config, host=ref_host)


def test_a_corrupt_page_arrives_as_a_store_error_naming_the_file(make_memory, ref_host):
    path, config = _store_file(make_memory)
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    for at in range(page, len(data), page):  # every page after the first: garbage
        data[at : at + page] = b"\xff" * page
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError) as info:
        mem = LightMemory(config, host=ref_host)
        mem.get_all()
    assert str(path) in str(info.value)
    assert "UnexpectedError" not in type(info.value).__name__


@pytest.mark.parametrize("damage", ["garbage", "zero bytes"])
def test_a_damaged_lexical_index_is_set_aside_and_rebuilt(make_memory, ref_host, damage):
    plugin = pytest.importorskip("lightmem_sqlite_index.plugin")
    ref_host.register(plugin, "sqlite-index")
    mem = make_memory(context_retriever={"model_name": "sqlite-bm25"}, retrieve_strategy="context")
    mem.add_memory(
        [{"role": "user", "content": "My dog is called Biscuit"}, *TURNS[:5]], force_extract=True
    )
    config = mem.config
    mem.close()
    index = Path(config.memory_dir) / "lexical_bm25.sqlite3"
    for side in ("-wal", "-shm"):
        index.with_name(index.name + side).unlink(missing_ok=True)
    index.write_bytes(b"\x13garbage, not an index" * 50 if damage == "garbage" else b"")
    with LightMemory(config, host=ref_host) as again:  # neither refused nor left blocked
        hits = again.search("Biscuit", limit=3)
        assert hits and "Biscuit" in hits[0].entry.memory
        again.add_memory([{"role": "user", "content": "The cat is Tom"}], force_extract=True)
        assert "Tom" in again.search("cat Tom", limit=1)[0].entry.memory
    if damage == "garbage":
        kept = index.with_name(index.name + ".damaged-1")
        assert kept.read_bytes().startswith(b"\x13garbage")  # kept for inspection
