"""Graph memory through LightMemory: relations from the same extraction call (loopback OpenAI
server), dedup, closing, a multi-hop question, time validity, restart and kill -9, scopes, the
no-LLM fallback on the embedded default, inspection."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("lightmem_openai", reason="lightmem-openai is not installed")
pytest.importorskip("lightmem_networkx", reason="lightmem-networkx is not installed")

import lightmem_core.builtin as builtin
from lightmem_core import LightMemory
from lightmem_core.testing import fresh_host
from lightmem_core.testing.reference import ReferencePlugin, reference_config

LINE = re.compile(r"^(\d+) (.*?): (.*)$")

#: What the scripted model answers per message text: the fact and its relations.
SCRIPT = {
    "My best friend is Bob.": (
        "Alice's best friend is Bob.",
        [("Alice", "friend_of", "Bob", False)],
    ),
    "bob has his home in Berlin.": (
        "Bob's home is in Berlin.",
        [("bob", "lives_in", "Berlin", True)],
    ),
    "Carol lives in Rome, where does she live now?": (
        "Carol lives in Rome.",
        [("Carol", "lives_in", "Rome", True)],
    ),
    "Dan lives in Oslo and loves where he lives.": (
        "Dan lives in Oslo.",
        [("Dan", "lives_in", "Oslo", True)],
    ),
    "Bob moved to Munich.": ("Bob moved to Munich.", [("Bob", "lives_in", "Munich", True)]),
    "Where does my sister live? In Paris.": (
        "Alice's sister lives in Paris.",
        [("Alice", "sister_of", "Paris", False)],
    ),
    "Where does Eve live? Eve, a friend, lives in Lima.": (
        "Alice's friend Eve lives in Lima.",
        [],
    ),
    "My friend Fay lives where it rains.": ("Alice's friend Fay lives where it rains.", []),
    "Does Gus live near? My friend Gus does.": ("Alice's friend Gus lives nearby.", []),
}

SESSIONS = [
    [
        ("My best friend is Bob.", "2023-01-10T10:00:00"),
        ("bob has his home in Berlin.", "2023-01-10T10:01:00"),
        ("Carol lives in Rome, where does she live now?", "2023-01-10T10:02:00"),
        ("Dan lives in Oslo and loves where he lives.", "2023-01-10T10:03:00"),
        ("Where does my sister live? In Paris.", "2023-01-10T10:04:00"),
        ("Where does Eve live? Eve, a friend, lives in Lima.", "2023-01-10T10:05:00"),
        ("My friend Fay lives where it rains.", "2023-01-10T10:06:00"),
        ("Does Gus live near? My friend Gus does.", "2023-01-10T10:07:00"),
    ],
    [("Bob moved to Munich.", "2024-03-01T09:00:00")],
]


def scripted_llm(body: dict) -> str:
    schema = body.get("response_format", {}).get("json_schema", {}).get("schema", {})
    fact_schema = schema["properties"]["facts"]["items"]["properties"]
    prompt = "\n".join(m["content"] for m in body["messages"] if isinstance(m["content"], str))
    facts = []
    for line in prompt.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        text = json.loads(m.group(3))  # message texts are JSON-quoted
        fact, relations = SCRIPT[text]
        item = {"text": fact, "sources": [int(m.group(1))], "importance": 0.9}
        if "relations" in fact_schema:
            item["relations"] = [
                {"subject": s, "relation": r, "object": o, "single": single}
                for s, r, o, single in relations
            ]
        facts.append(item)
    return json.dumps({"facts": facts})


def host():
    import lightmem_networkx.plugin as networkx_plugin
    import lightmem_openai.plugin as openai_plugin

    return fresh_host(builtin, ReferencePlugin(), networkx_plugin, openai_plugin)


def llm_config(tmp_path, server, *, graph: bool, **overrides):
    config = reference_config(
        tmp_path / ("graph" if graph else "plain"),
        memory_manager={
            "model_name": "openai",
            "configs": {"api_key": "sk-test", "openai_base_url": server.base_url},
        },
        metadata_generate=False,
        text_summary=False,
        topic_segment=False,
        update=None,
        **overrides,
    )
    if graph:
        # The reference embedder hashes each word into one of 64 buckets: two names in one
        # bucket would look identical, so entities are matched by name only here.
        config |= {
            "graph_mem": True,
            "graph_memory": {"model_name": "networkx"},
            "graph": {"similarity": None},
        }
    return config


def ingest(mem, user="alice"):
    for session in SESSIONS:
        mem.add_memory(
            [
                {"role": "user", "content": t, "time_stamp": ts, "speaker_name": "Alice"}
                for t, ts in session
            ],
            force_extract=True,
            user_id=user,
        )


@pytest.fixture
def server(openai_server):
    openai_server.responder = scripted_llm
    return openai_server


def test_relations_come_from_the_same_call_linked_to_their_sources(tmp_path, server):
    with LightMemory(llm_config(tmp_path, server, graph=False), host=host()) as plain:
        ingest(plain)
    calls_without = len(server.chat_requests)
    assert calls_without == len(SESSIONS)
    with LightMemory(llm_config(tmp_path, server, graph=True), host=host()) as mem:
        ingest(mem)
        assert len(server.chat_requests) - calls_without == calls_without, "no extra LLM call"
        entries = {e.memory: e for e in mem.get_all(user_id="alice")}
        graph = mem.backends.graphs()[0]
        for rel in graph.relations():
            entry = next(e for e in entries.values() if e.id == rel.entry_id)
            assert rel.message_ids == entry.source_message_ids
            assert rel.valid_from == entry.time_stamp.timestamp() or rel.valid_from is not None
        bob = [e for e in graph.entities() if e.name.lower() == "bob"]
        assert len(bob) == 1, "'bob' and 'Bob' are one entity"
        got = mem.get(entries["Bob's home is in Berlin."].id)
        [berlin] = got.metadata["graph"]
        assert berlin["relation"] == "lives_in" and berlin["object_name"] == "Berlin"
        assert berlin["valid_until"] == "2024-03-01T09:00:00+00:00", "closed by the move"
        assert berlin["superseded_by"]


def test_a_changed_relation_closes_the_old_one_and_history_keeps_both(tmp_path, server):
    with LightMemory(llm_config(tmp_path, server, graph=True), host=host()) as mem:
        ingest(mem)
        lines = mem.graph_show("Bob", user_id="alice")
        assert any("bob -lives_in-> berlin" in ln.lower() and "(superseded)" in ln for ln in lines)
        assert any("Bob -lives_in-> Munich" in ln and "(superseded)" not in ln for ln in lines)
        exported = json.loads(mem.graph_export("json", user_id="alice"))
        homes = [r for r in exported["relations"] if r["relation"] == "lives_in"]
        assert {r["object_name"] for r in homes} == {"Berlin", "Rome", "Oslo", "Munich"}
        assert "<graphml" in mem.graph_export("graphml", user_id="alice")


def test_a_multi_hop_question_is_answered_from_the_graph(tmp_path, server):
    question = "Where does Alice's friend live?"
    with LightMemory(llm_config(tmp_path, server, graph=False), host=host()) as plain:
        ingest(plain)
        without = [h.entry.memory for h in plain.search(question, limit=3, user_id="alice")]
    assert "Bob moved to Munich." not in without
    # LLM relations are precise: give the graph the weight of the other signals (the default
    # 0.4 is tuned for the noisier no-LLM fallback graph).
    weights = {"embedding": 1.0, "context": 1.0, "graph": 1.0, "rrf_k": 10}
    config = llm_config(tmp_path, server, graph=True, hybrid_weights=weights)
    with LightMemory(config, host=host()) as mem:
        ingest(mem)
        hits = mem.search(question, limit=3, user_id="alice")
        found = {h.entry.memory: h for h in hits}
        assert "Bob moved to Munich." in found
        munich = found["Bob moved to Munich."]
        assert munich.paths["graph"] == ["Alice -friend_of-> Bob", "Bob -lives_in-> Munich"]
        assert munich.scores["graph"] > 0
        assert "Bob's home is in Berlin." not in found, "a closed relation is not walked now"
        in_2023 = mem.search(
            "Where did Alice's friend live?",
            limit=3,
            user_id="alice",
            filters={"time_gte": dt.datetime(2023, 6, 1), "time_lt": dt.datetime(2024, 1, 1)},
        )
        assert "Bob's home is in Berlin." in [h.entry.memory for h in in_2023]


def test_the_graph_is_scoped(tmp_path, server):
    with LightMemory(llm_config(tmp_path, server, graph=True), host=host()) as mem:
        ingest(mem, user="alice")
        assert mem.graph_show("Bob", user_id="zoe") == []
        hits = mem.search("Where does Alice's friend live?", limit=5, user_id="zoe")
        assert hits == []
        graph = mem.backends.graphs()[0]
        assert {e.scope.user_id for e in graph.entities()} == {"alice"}


def test_restart_and_reindex_keep_the_graph(tmp_path, server):
    config = llm_config(tmp_path, server, graph=True)
    with LightMemory(config, host=host()) as mem:
        ingest(mem)
        before = json.loads(mem.graph_export("json"))
    calls = len(server.chat_requests)
    with LightMemory(config, host=host()) as again:
        assert json.loads(again.graph_export("json")) == before
        assert again.reindex() == len(SCRIPT)
        after = json.loads(again.graph_export("json"))
        strip = lambda d: sorted(  # noqa: E731
            (r["id"], r["valid_from"], r["valid_until"]) for r in d["relations"]
        )
        assert strip(after) == strip(before)
    assert len(server.chat_requests) == calls, "the graph is rebuilt without the LLM"


_CRASH = """
import json, os, signal, sys
sys.path.insert(0, {tests!r})
from test_graph_memory import host, llm_config, ingest, SESSIONS
from lightmem_core import LightMemory
from lightmem_core.testing.openai_server import OpenAICompatibleServer
import test_graph_memory as t
import pathlib
with OpenAICompatibleServer() as server:
    server.responder = t.scripted_llm
    config = llm_config(pathlib.Path({tmp!r}), server, graph=True)
    mem = LightMemory(config, host=host())
    graph = mem.backends.graphs()[0]
    real = graph.index
    calls = []
    def index(entry_ids, entities, relations):
        calls.append(1)
        if len(calls) == {crash_at}:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(entry_ids, entities, relations)
    graph.index = index
    ingest(mem)
    os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("crash_at", [1, 2, 99], ids=["first index", "second index", "after"])
def test_a_kill_9_leaves_graph_and_records_consistent(tmp_path, server, crash_at):
    code = _CRASH.format(tests=os.path.dirname(__file__), tmp=str(tmp_path), crash_at=crash_at)
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    with LightMemory(llm_config(tmp_path, server, graph=True), host=host()) as mem:
        mem.retry()
        ingest(mem)
        active = {e.id for e in mem.get_all()}
        graph = mem.backends.graphs()[0]
        mem.search("Bob", limit=1)  # opens and syncs the indexes
        assert graph.entry_ids() == active
        assert {r.entry_id for r in graph.relations()} <= active
        assert len(active) == len(SCRIPT)
        assert any("Munich" in ln for ln in mem.graph_show("Bob", user_id="alice"))


def test_inspection_needs_graph_memory(make_memory):
    from lightmem_core.errors import InputError

    mem = make_memory()
    with pytest.raises(InputError, match="graph_mem"):
        mem.graph_show("Bob")
    mem.close()
    with pytest.raises(InputError, match="format"):
        make_memory(graph_mem=True, graph_memory={"model_name": "memory"}).graph_export("xml")


@pytest.fixture
def embedded_graph(tmp_path):
    """The embedded default (MiniLM, Qdrant, BM25, no LLM) with the networkx graph."""
    pytest.importorskip("lightmem_huggingface", reason="the embedded default is not installed")
    pytest.importorskip("lightmem_qdrant", reason="the embedded default is not installed")
    config = {
        "memory_dir": str(tmp_path / "embedded"),
        "graph_mem": True,
        "graph_memory": {"model_name": "networkx"},
        "background_retry": False,
    }
    messages = [
        ("Maya", "I finally hiked Half Dome in Yosemite with Priya!", "2024-05-04T18:00:00"),
        ("Leo", "Wow. Does Priya still run?", "2024-05-04T18:01:00"),
        (
            "Maya",
            "Priya is training for the Boston Marathon in April 2025.",
            "2024-05-04T18:02:00",
        ),
        ("Leo", "My cousin Tomas ran the Boston Marathon with 3 friends.", "2024-05-04T18:03:00"),
    ]
    with LightMemory(config) as mem:
        mem.add(
            [
                {"role": "user", "content": text, "speaker_name": who, "time_stamp": ts}
                for who, text, ts in messages
            ],
            user_id="maya",
        )
    return config


def test_the_no_llm_fallback_on_the_embedded_default(embedded_graph):
    with LightMemory(embedded_graph) as mem:
        lines = mem.graph_show("Priya", user_id="maya")
        assert lines and lines[0].startswith("Priya")
        assert any("Yosemite" in ln for ln in lines) and any("Half Dome" in ln for ln in lines)
        two = mem.graph_show("Priya", 2, user_id="maya")
        assert any("Tomas" in ln for ln in two), "Priya - Boston Marathon - Tomas"
        hits = mem.search("Who else ran the Boston Marathon like Priya?", limit=5, user_id="maya")
        graph_hits = [h for h in hits if "graph" in h.scores]
        assert graph_hits and all(h.paths["graph"] for h in graph_hits)
        exported = json.loads(mem.graph_export("json", user_id="maya"))
        names = {e["name"] for e in exported["entities"]}
        assert {
            "Priya",
            "Yosemite",
            "Half Dome",
            "Boston Marathon",
            "April 2025",
            "3 friends",
        } <= names
        assert "Wow" not in names
        people = {e["name"] for e in exported["entities"] if e["kind"] == "person"}
        assert people == {"Maya", "Leo"}, "speakers are people; what they say, their mentions"


def test_the_cli_shows_and_exports(embedded_graph, tmp_path, capsys):
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(embedded_graph))
    from lightmem_core.cli import main

    show = ["graph", "show", "Priya", "--depth", "2", "--user-id", "maya"]
    assert main([*show, "--config", str(config_file)]) == 0
    assert "Boston Marathon" in capsys.readouterr().out
    out = tmp_path / "g.graphml"
    args = ["graph", "export", "--format", "graphml", "--output", str(out)]
    assert main([*args, "--config", str(config_file)]) == 0
    assert "Half Dome" in out.read_text()
    assert main(["graph", "show", "Nobody", "--config", str(config_file)]) == 1


def test_search_can_leave_the_graph_out(tmp_path, server):
    from lightmem_core.errors import InputError

    with LightMemory(llm_config(tmp_path, server, graph=True), host=host()) as mem:
        ingest(mem)
        question = "Where does Alice's friend live?"
        hits = mem.search(question, limit=5, user_id="alice", retrievers=["embedding", "context"])
        assert all("graph" not in h.scores and not h.paths for h in hits)
        only = mem.search(question, limit=5, user_id="alice", retrievers=["graph"])
        assert only and all(set(h.scores) == {"graph"} for h in only)
        with pytest.raises(InputError, match="not in the retrieval chain"):
            mem.search(question, retrievers=["vectors"])
