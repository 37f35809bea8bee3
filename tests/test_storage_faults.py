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


def test_reindex_rebuilds_a_lexical_index_damaged_past_its_first_pages(tmp_path):
    """A lexical index whose later pages are garbage opens (its first pages are sound), so it
    is not set aside on open and blocks every search; ``lightmem reindex`` finds the damage,
    moves the file aside, rebuilds it from the record store and says so."""
    import json
    import subprocess
    import sys

    pytest.importorskip("lightmem_sqlite_index")
    config = tmp_path / "lexical.json"
    config.write_text(
        json.dumps(
            {
                "context_retriever": {"model_name": "sqlite-bm25"},
                "embedding_retriever": None,
                "text_embedder": None,
                "topic_segment": False,
                "retrieve_strategy": "context",
            }
        )
    )
    memory = tmp_path / "mem"
    args = ["--config", str(config), "--memory-dir", str(memory)]

    def lightmem(*command: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "lightmem_core.cli", *command, *args],
            capture_output=True,
            text=True,
        )

    chat = tmp_path / "chat.json"
    facts = [f"note {i}: the plum tree by the shed gave {i} baskets" for i in range(600)]
    chat.write_text(
        json.dumps(
            [
                {"role": "user", "content": "My dog is called Biscuit"},
                *[{"role": "user", "content": fact} for fact in facts],
            ]
        )
    )
    assert lightmem("add", str(chat)).returncode == 0
    index = memory / "lexical_bm25.sqlite3"
    for side in ("-wal", "-shm"):
        assert not index.with_name(index.name + side).exists()  # closed: all in the file
    data = bytearray(index.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    pages = len(data) // page
    assert pages > 20
    for n in range(pages // 2, pages):
        data[n * page : (n + 1) * page] = b"\xff" * page
    index.write_bytes(bytes(data))
    broken = lightmem("search", "plum baskets")
    assert broken.returncode != 0 and "malformed" in broken.stderr  # today's state: blocked

    out = lightmem("reindex")
    assert out.returncode == 0, out.stderr
    assert f"reindexed {len(facts) + 1} active memories" in out.stdout
    kept = index.with_name(index.name + ".damaged-1")
    assert f"moved to {kept}" in out.stderr and "rebuilt from the record store" in out.stderr
    assert kept.read_bytes() == bytes(data)  # kept for inspection, as it was
    found = lightmem("search", "Biscuit")
    assert found.returncode == 0 and "My dog is called Biscuit" in found.stdout
    assert "note 432: " in lightmem("search", "plum 432 baskets").stdout
