"""The error contract at the API boundary: configurations checked when the memory is built,
hostile inputs refused with typed errors before anything is written, one owner per memory
directory, and no secret in a configuration's repr."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import textwrap

import pytest

from lightmem_core import LightMemory
from lightmem_core.errors import ConfigError, InputError, LightMemError, MemoryDirInUseError
from lightmem_core.testing.reference import reference_config

SECRET = "sk-do-not-print-me-0123456789"


@pytest.mark.parametrize(
    ("overrides", "path"),
    [
        ({"extract_threshold": 5.0}, "$.extract_threshold"),
        ({"extract_threshold": float("nan")}, "$.extract_threshold"),
        ({"hybrid_weights": {"rrf_k": 0}}, "$.hybrid_weights.rrf_k"),
        ({"hybrid_weights": {"rrf_k": -1}}, "$.hybrid_weights.rrf_k"),
        ({"hybrid_weights": {"embedding": float("inf")}}, "$.hybrid_weights.embedding"),
        ({"online_update_threshold": -0.1}, "$.online_update_threshold"),
        ({"lock_timeout": -1.0}, "$.lock_timeout"),
        ({"memory_dir": "bad\udcff"}, "$.memory_dir"),
    ],
)
def test_out_of_range_values_are_refused_when_built(tmp_path, ref_host, overrides, path):
    with pytest.raises(ConfigError) as info:
        LightMemory.from_config({**reference_config(tmp_path / "m"), **overrides}, host=ref_host)
    assert any(line.startswith(path) for line in info.value.errors), info.value.errors
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("config", [["memory_dir"], "x: 1", 42, {1: "x"}, {"memory_dir": 3}])
def test_malformed_configurations_are_config_errors(ref_host, config):
    with pytest.raises(ConfigError):
        LightMemory(config, host=ref_host)


def test_memory_dir_that_is_a_file(tmp_path, ref_host):
    target = tmp_path / "file"
    target.write_text("not a folder")
    with pytest.raises(ConfigError, match="memory_dir"):
        LightMemory(reference_config(target), host=ref_host)
    assert target.read_text() == "not a folder"


def test_repr_of_config_hides_secrets(make_memory):
    mem = make_memory(memory_manager=None)
    from lightmem_core.config import BackendSpec

    spec = BackendSpec("openai", {"api_key": SECRET, "model": "m", "extra": {"token": SECRET}})
    config = type(mem.config)(memory_manager=spec)
    for text in (repr(config), str(config), repr(spec)):
        assert SECRET not in text
        assert "'model': 'm'" in text
    from lightmem_core.config import HookPluginSpec, RetrieverSpec

    for obj in (
        RetrieverSpec("context_retriever", "x", {"api_key": SECRET}),
        HookPluginSpec("audit", {"password": SECRET, "nested": [{"secret": SECRET}]}),
    ):
        assert SECRET not in repr(obj) and "***" in repr(obj)


def test_repr_of_config_hides_passwords_in_connection_strings():
    from lightmem_core.config import BackendSpec

    for dsn in (
        f"postgresql://alice:{SECRET}@db.example.com:5432/mem",
        f"postgresql://db.example.com/mem?user=alice&password={SECRET}&sslmode=require",
        f"host=db.example.com user=alice password={SECRET} dbname=mem",
        f"host=db.example.com password='{SECRET}' dbname=mem",
    ):
        spec = BackendSpec("pgvector", {"dsn": dsn, "schema": "mem"})
        assert SECRET not in repr(spec)
        assert "db.example.com" in repr(spec) and "***" in repr(spec)


@pytest.mark.parametrize(
    "time_stamp",
    [
        float("inf"),
        float("-inf"),
        float("nan"),
        1e20,
        "0001-01-01T00:00:00+05:00",
        "9999-12-31T23:59:59-05:00",
        "1:56 pm on 40 May, 2023",
        "2023/13/40 (Sat) 25:61",
        "bad\udcff",
        dt.date(2024, 1, 1).isoformat() + "T99:00",
    ],
)
def test_unusable_time_stamps_are_input_errors(make_memory, time_stamp):
    mem = make_memory()
    with pytest.raises(InputError, match=r"messages\[0\]\.time_stamp"):
        mem.add([{"role": "user", "content": "x", "time_stamp": time_stamp}])
    assert mem.store.journal() == []


def _deep(n):
    value: dict = {}
    for _ in range(n):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    "message",
    [
        {"role": "user", "content": "x", "metadata": ["not", "an", "object"]},
        {"role": "user", "content": "x", "metadata": _deep(1000)},
        {"role": "user", "content": "x", "metadata": {"n": float("nan")}},
        {"role": "user", "content": "x", "metadata": {"o": object()}},
        {"role": "user", "content": "lone \ud800 surrogate"},
        {"role": "user", "content": "x", "id": "id\udfff"},
        {"role": "user", "content": "x", "id": ""},
        {"role": "user", "content": "x", "speaker_name": ["x"]},
        {"role": ["user"], "content": "x"},
        {"role": "user", "content": "x", 3: "non-string key"},
    ],
)
def test_hostile_messages_are_input_errors(make_memory, message):
    mem = make_memory()
    with pytest.raises(InputError):
        mem.add([message])
    assert mem.store.journal() == []


@pytest.mark.parametrize(
    ("kwargs", "where"),
    [
        ({"limit": 2**63}, "limit"),
        ({"limit": 0}, "limit"),
        ({"filters": {"exclude_ids": [1]}}, "exclude_ids"),
        ({"filters": {"exclude_ids": "abc"}}, "exclude_ids"),
        ({"filters": {"time_gte": float("nan")}}, "time_gte"),
        ({"filters": {"time_lt": float("inf")}}, "time_lt"),
        ({"filters": {"topic_id": 2**70}}, "topic_id"),
        ({"filters": {"speaker": 5}}, "speaker"),
        ({"filters": {"nope": 1}}, "unknown"),
        ({"filters": [("user_id", "u")]}, "filters"),
        ({"strategy": ["hybrid"]}, "strategy"),
    ],
)
def test_hostile_search_arguments_are_input_errors(make_memory, kwargs, where):
    mem = make_memory()
    mem.add([{"role": "user", "content": "my dog is called Rex"}])
    with pytest.raises(InputError, match=where):
        mem.search("dog", **kwargs)
    with pytest.raises(InputError):
        mem.search("dog\udcff")
    assert [e.memory for e in mem.get_all()] == ["my dog is called Rex"]


def test_unexpected_failures_are_chained_typed_errors(make_memory, monkeypatch):
    mem = make_memory()
    mem.add([{"role": "user", "content": "my dog is called Rex"}])

    class Panic(BaseException):  # like pyo3_runtime.PanicException: not an Exception
        pass

    def explode(*args, **kwargs):
        raise Panic("called `Option::unwrap()` on a `None` value")

    monkeypatch.setattr(mem.vector_index, "search", explode)
    with pytest.raises(LightMemError) as info:
        mem.search("dog")
    assert isinstance(info.value.__cause__, Panic)


def test_second_owner_is_refused_before_writing(tmp_path, ref_host):
    cfg = reference_config(tmp_path / "m")
    with LightMemory(cfg, host=ref_host) as first:
        first.add([{"role": "user", "content": "owned fact"}])
        with pytest.raises(MemoryDirInUseError) as info:
            LightMemory(cfg, host=ref_host)
        assert info.value.pid == os.getpid()
    with LightMemory(cfg, host=ref_host) as again:  # closed: the next owner may open it
        assert [e.memory for e in again.get_all()] == ["owned fact"]


def test_second_process_is_refused_and_names_the_owner(tmp_path, ref_host):
    cfg = reference_config(tmp_path / "m")
    code = textwrap.dedent(
        f"""
        import lightmem_core.builtin as builtin
        from lightmem_core import LightMemory
        from lightmem_core.errors import MemoryDirInUseError
        from lightmem_core.testing import fresh_host
        from lightmem_core.testing.reference import ReferencePlugin
        host = fresh_host(builtin, ReferencePlugin())
        try:
            LightMemory({cfg!r}, host=host)
        except MemoryDirInUseError as exc:
            print("refused", exc.pid)
        """
    )
    with LightMemory(cfg, host=ref_host) as owner:
        owner.add([{"role": "user", "content": "owned fact"}])
        before = (tmp_path / "m" / "history.db").stat().st_mtime_ns
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert out.stdout.split() == ["refused", str(os.getpid())], out.stderr
        assert (tmp_path / "m" / "history.db").stat().st_mtime_ns == before


def test_embedding_dims_mismatch_is_refused_when_built(tmp_path, ref_host):
    pytest.importorskip("lightmem_qdrant")
    import lightmem_qdrant.plugin as qdrant_plugin

    from lightmem_core.testing import fresh_host
    from lightmem_core.testing.reference import ReferencePlugin

    host = fresh_host(ReferencePlugin(), qdrant_plugin)
    config = reference_config(
        tmp_path / "m",
        embedding_retriever={"model_name": "qdrant", "configs": {"embedding_model_dims": 3}},
    )
    with pytest.raises(ConfigError, match=r"embedding_model_dims: 3.*64"):
        LightMemory(config, host=host)
    config["embedding_retriever"]["configs"]["embedding_model_dims"] = 64
    with LightMemory(config, host=host) as mem:
        mem.add([{"role": "user", "content": "dims agree"}])


@pytest.mark.parametrize("name", ["../../x", "a/b", "..", "/abs"])
def test_collection_name_cannot_leave_the_memory_dir(tmp_path, name):
    pytest.importorskip("lightmem_qdrant")
    from lightmem_core.plugins import PluginHost

    config = {
        "memory_dir": str(tmp_path / "m"),
        "embedding_retriever": {"model_name": "qdrant", "configs": {"collection_name": name}},
    }
    with pytest.raises(ConfigError, match="collection_name"):
        LightMemory(config, host=PluginHost())
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_lock_timeout_waits_for_the_owner_to_close(tmp_path, ref_host):
    import threading
    import time

    cfg = reference_config(tmp_path / "m")
    first = LightMemory(cfg, host=ref_host)
    closer = threading.Timer(0.3, first.close)
    closer.start()
    started = time.monotonic()
    with LightMemory({**cfg, "lock_timeout": 10.0}, host=ref_host) as second:
        assert 0.2 < time.monotonic() - started < 10.0
        assert second.get_all() == []
    closer.join()
    with pytest.raises(MemoryDirInUseError), LightMemory(cfg, host=ref_host):
        LightMemory({**cfg, "lock_timeout": 0.2}, host=ref_host)
