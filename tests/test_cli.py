"""The `lightmem` command line, run as a user runs it (a subprocess on real plugins)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def lightmem(
    *args: str, cwd: Path | None = None, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lightmem_core.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        check=check,
        env=None if env is None else {**os.environ, **env},
    )


def _needs_default_plugins():
    for module in ("lightmem_huggingface", "lightmem_qdrant", "lightmem_sqlite_index"):
        pytest.importorskip(module, reason="the embedded default plugins are not installed")


def test_plugins_json_lists_every_installed_plugin_of_the_repo():
    data = json.loads(lightmem("plugins", "--json").stdout)
    by_dist = {p["distribution"]: p for p in data["plugins"]}
    assert by_dist["lightmem-core"]["backends"] == {
        "context_retriever": ["multimodal"],
        "record_store": ["sqlite"],
        "reranker": ["newer_first"],
        "topic_segmenter": ["embedding"],
    }
    for pyproject in sorted(ROOT.glob("plugins/*/pyproject.toml")):
        dist = tomllib.loads(pyproject.read_text())["project"]["name"]
        module = dist.replace("-", "_")
        try:
            __import__(module)
        except ImportError:
            continue  # not installed in this environment (e.g. the core-only nox session)
        assert dist in by_dist, f"{dist} is installed but not discovered"
        assert by_dist[dist]["error"] is None, by_dist[dist]["error"]
        assert by_dist[dist]["backends"] or by_dist[dist]["hooks"], f"{dist} provides nothing"
        assert by_dist[dist]["description"], f"{dist} has no description"


def test_config_check_reports_errors_with_paths(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"messages_use": "everyone", "topic_segmnt": True}))
    out = lightmem("config", "check", str(bad), check=False)
    assert out.returncode == 2
    assert "$.messages_use: expected one of" in out.stderr
    assert "unknown key(s) topic_segmnt" in out.stderr
    good = tmp_path / "good.toml"
    good.write_text('retrieve_strategy = "context"\ncontext_retriever = { model_name = "BM25" }\n')
    pytest.importorskip("lightmem_bm25")
    out = lightmem("config", "check", str(good))
    assert "OK" in out.stdout and "BM25" in out.stdout


@pytest.mark.slow
def test_add_search_stats_on_the_embedded_default(tmp_path):
    _needs_default_plugins()
    messages = tmp_path / "messages.jsonl"
    messages.write_text(
        "\n".join(
            json.dumps(m)
            for m in [
                {
                    "role": "user",
                    "content": "My cat is called Miso",
                    "time_stamp": "2024-02-01T10:00",
                },
                {
                    "role": "user",
                    "content": "I play the cello on Sundays",
                    "time_stamp": "2024-02-02T10:00",
                },
            ]
        )
    )
    mdir = str(tmp_path / "mem")
    assert "2 messages" in lightmem("add", str(messages), "--memory-dir", mdir).stdout
    hits = json.loads(
        lightmem(
            "search", "what is my cat's name", "--limit", "1", "--json", "--memory-dir", mdir
        ).stdout
    )
    assert hits[0]["memory"] == "My cat is called Miso"
    assert set(hits[0]["scores"]) == {"embedding", "context"}
    stats = json.loads(lightmem("stats", "--memory-dir", mdir).stdout)
    assert stats["entries"] == {"active": 2}
    assert stats["usage"]["total"]["embedder_calls"] >= 2


@pytest.mark.slow
def test_demo_answers_the_dog_question_first_and_keeps_its_memory_in_the_cache(tmp_path):
    _needs_default_plugins()
    work, cache = tmp_path / "checkout", tmp_path / "cache"
    work.mkdir()
    out = lightmem("demo", cwd=work, env={"XDG_CACHE_HOME": str(cache)}).stdout
    assert list(work.iterdir()) == []  # nothing left in the folder it ran in
    assert (cache / "lightmem" / "demo" / "history.db").is_file()
    assert f"memory directory {cache / 'lightmem' / 'demo'}" in out
    answer = out.split("Q: What is the name of my dog?")[1].split("Q:")[0]
    first = answer.strip().splitlines()[1]
    assert "Biscuit" in first


def test_add_exits_non_zero_when_every_extraction_fails(tmp_path, openai_server):
    _needs_default_plugins()
    pytest.importorskip("lightmem_openai")
    openai_server.fail_rate(1.0)
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {
                "memory_dir": str(tmp_path / "mem"),
                "memory_manager": {
                    "model_name": "openai",
                    "configs": {
                        "model": "m",
                        "api_key": "sk-cli-test",
                        "openai_base_url": openai_server.base_url,
                        "max_retries": 0,
                    },
                },
            }
        )
    )
    messages = tmp_path / "messages.jsonl"
    messages.write_text(json.dumps({"role": "user", "content": "My cat is called Miso"}))
    out = lightmem("add", str(messages), "--config", str(config), check=False)
    assert out.returncode == 1, out.stderr
    assert "stay pending" in out.stderr and "sk-cli-test" not in out.stdout + out.stderr
    openai_server.fail_rate(0.0)
    stats = json.loads(lightmem("stats", "--config", str(config)).stdout)
    assert stats["messages"] == {"batched": 1} and stats["batches"] == {"failed": 1}


def test_plugins_shows_descriptions_hooks_and_unknown_selected_names():
    pytest.importorskip("lightmem_otel")
    pytest.importorskip("lightmem_bm25")
    out = lightmem("plugins", env={"LIGHTMEM_PLUGINS": "otel,bm25,no-such-plugin"}).stdout
    otel = out.split("otel  (lightmem-otel")[1].split("\n\\S")[0]
    assert "OpenTelemetry spans" in otel and "hooks: lightmem_run_operation" in otel
    assert "BM25 keyword retrieval" in out and "context_retriever: BM25" in out
    assert "LIGHTMEM_PLUGINS names 'no-such-plugin', but no installed plugin" in out


def test_a_backend_left_out_by_lightmem_plugins_is_not_called_missing(tmp_path):
    pytest.importorskip("lightmem_bm25")
    config = tmp_path / "c.json"
    config.write_text(
        json.dumps(
            {
                "retrieve_strategy": "context",
                "context_retriever": {"model_name": "BM25"},
                "memory_dir": str(tmp_path / "m"),
            }
        )
    )
    out = lightmem(
        "config", "check", str(config), check=False, env={"LIGHTMEM_PLUGINS": "lightmem-core"}
    )
    assert out.returncode == 2
    assert "leaves out installed plugins, which may provide it" in out.stderr
    assert "bm25 (lightmem-bm25)" in out.stderr


@pytest.mark.slow
def test_config_check_and_search_json_show_the_graph(tmp_path):
    pytest.importorskip("lightmem_bm25")
    pytest.importorskip("lightmem_networkx")
    config = tmp_path / "graph.json"
    chain = [
        {"kind": "context_retriever", "model_name": "BM25"},
        {"kind": "graph_memory", "model_name": "networkx"},
    ]
    settings = {
        "retrieve_strategy": "hybrid",
        "embedding_retriever": None,
        "context_retriever": None,
        "text_embedder": None,
        "graph_mem": True,
        "graph_memory": {"model_name": "networkx"},
        "graph": {"similarity": None},
        "retrieval": {"retrievers": chain, "fusion": {"method": "weighted"}},
    }
    config.write_text(json.dumps(settings))
    checked = lightmem("config", "check", str(config)).stdout
    assert "  fusion: weighted\n" in checked, checked
    messages = tmp_path / "m.jsonl"
    messages.write_text(
        json.dumps({"role": "user", "content": "Anna lives in Porto.", "speaker_name": "Anna"})
        + "\n"
    )
    mdir = str(tmp_path / "mem")
    lightmem("add", str(messages), "--config", str(config), "--memory-dir", mdir)
    hits = json.loads(
        lightmem(
            "search",
            "Where does Anna live",
            "--json",
            "--config",
            str(config),
            "--memory-dir",
            mdir,
        ).stdout
    )
    assert hits[0]["paths"] == {"graph": ["Anna -mentions-> Porto"]}


# -- errors that help, quiet output, versions ---------------------------------------------------

#: A configuration without a text embedder: these tests load no model.
LEXICAL = {
    "retrieve_strategy": "context",
    "context_retriever": {"model_name": "sqlite-bm25"},
    "text_embedder": None,
    "topic_segment": False,
}


@pytest.fixture
def lexical(tmp_path):
    pytest.importorskip("lightmem_sqlite_index")
    path = tmp_path / "lexical.json"
    path.write_text(json.dumps(LEXICAL))
    return ["--config", str(path), "--memory-dir", str(tmp_path / "mem")]


def test_add_names_the_message_that_lacks_a_role_and_writes_nothing(tmp_path, lexical):
    chat = tmp_path / "chat.json"
    chat.write_text(
        json.dumps(
            [{"role": "user", "content": "My dog is called Biscuit"}, {"content": "no role here"}]
        )
    )
    out = lightmem("add", str(chat), *lexical, check=False)
    assert out.returncode == 2
    assert out.stderr.startswith(f"error: {chat}: messages[1].role: expected one of user,")
    assert "expected a list" not in out.stderr
    assert lightmem("search", "Biscuit", *lexical).stdout == ""  # nothing was added


def test_add_names_the_session_of_a_bad_message_and_adds_no_session(tmp_path, lexical):
    chat = tmp_path / "sessions.json"
    good = [{"role": "user", "content": "My dog is called Biscuit"}]
    bad = [{"role": "user", "content": "fine"}, {"role": "robot", "content": "beep"}]
    chat.write_text(json.dumps({"sessions": [good, {"date": "2024-03-02", "messages": bad}]}))
    out = lightmem("add", str(chat), *lexical, check=False)
    assert out.returncode == 2
    assert f"{chat}: session 2: messages[1].role: expected one of" in out.stderr
    assert lightmem("search", "Biscuit", *lexical).stdout == ""  # session 1 was not added either


def test_add_of_an_empty_list_is_a_no_op_with_a_note(tmp_path, lexical):
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    out = lightmem("add", str(empty), *lexical)
    assert out.stdout == ""
    assert f"nothing to add: {empty} holds no messages" in out.stderr
    assert lightmem("add", str(empty), *lexical, "--quiet").stderr == ""


def test_search_in_a_folder_without_memory_says_so_and_creates_nothing(tmp_path):
    out = lightmem("search", "anything", cwd=tmp_path, check=False)
    assert out.returncode == 1 and out.stdout == ""
    assert "no memory in ./lightmem_data:" in out.stderr and "lightmem add FILE" in out.stderr
    assert list(tmp_path.iterdir()) == []
    out = lightmem(
        "graph", "show", "Biscuit", "--memory-dir", str(tmp_path / "elsewhere"), check=False
    )
    assert out.returncode == 1 and f"no memory in {tmp_path / 'elsewhere'}" in out.stderr
    assert list(tmp_path.iterdir()) == []


def test_search_shortens_long_memories_unless_full(tmp_path, lexical):
    chat = tmp_path / "long.json"
    text = "Biscuit " + "and so on " * 200
    chat.write_text(json.dumps([{"role": "user", "content": text}]))
    # one memory of the whole message (by default it would be stored as passages)
    Path(lexical[1]).write_text(json.dumps({**LEXICAL, "indexing": {"max_entry_words": None}}))
    lightmem("add", str(chat), *lexical)
    short = lightmem("search", "Biscuit", *lexical).stdout
    assert len(short) < 500 and "more characters; --full shows all]" in short
    whole = lightmem("search", "Biscuit", "--full", *lexical).stdout
    assert text.strip() in whole


def test_search_times_the_query_apart_from_start_up(tmp_path, lexical):
    chat = tmp_path / "chat.json"
    chat.write_text(json.dumps([{"role": "user", "content": "My dog is called Biscuit"}]))
    lightmem("add", str(chat), *lexical)
    out = lightmem("search", "Biscuit", *lexical)
    assert "1. [" in out.stdout
    assert re.fullmatch(r"\(1 hits in [\d.]+ ms; start-up \d+ ms\)\n", out.stderr), out.stderr
    quiet = lightmem("search", "Biscuit", *lexical, "--quiet")
    assert quiet.stdout == out.stdout and quiet.stderr == ""


def test_version_prints_every_installed_lightmem_distribution():
    from importlib import metadata

    out = lightmem("--version").stdout
    lines = dict(line.split() for line in out.splitlines())
    assert out.splitlines()[0].startswith("lightmem-core ")
    for name in ("lightmem-core", "lightmem-hookspecs"):
        assert lines[name] == metadata.version(name)
    for pyproject in sorted(ROOT.glob("plugins/*/pyproject.toml")):
        dist = tomllib.loads(pyproject.read_text())["project"]["name"]
        try:
            version = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
        assert lines[dist] == version


@pytest.mark.slow
def test_model_loading_shows_no_progress_bar_unless_verbose(tmp_path):
    _needs_default_plugins()
    chat = tmp_path / "chat.json"
    chat.write_text(json.dumps([{"role": "user", "content": "My dog is called Biscuit"}]))
    args = ["--memory-dir", str(tmp_path / "mem")]
    lightmem("add", str(chat), *args, cwd=tmp_path)
    quiet = lightmem("search", "dog", *args, "--quiet", cwd=tmp_path)
    assert quiet.stderr == "" and "Biscuit" in quiet.stdout
    plain = lightmem("search", "dog", *args, cwd=tmp_path)
    assert "Loading weights" not in plain.stderr and "it/s" not in plain.stderr
    assert plain.stderr.startswith("(1 hits in ")
