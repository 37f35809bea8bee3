"""The `lightmem` command line, run as a user runs it (a subprocess on real plugins)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def lightmem(
    *args: str, cwd: Path | None = None, check: bool = True, env: dict | None = None
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
def test_demo_answers_the_dog_question_first(tmp_path):
    _needs_default_plugins()
    out = lightmem("demo", "--memory-dir", str(tmp_path / "demo"), cwd=tmp_path).stdout
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
