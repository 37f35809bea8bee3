"""The networkx graph memory: discovery without networkx, crash consistency, in-process use."""

from __future__ import annotations

import itertools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

from lightmem_hookspecs import BackendContext, Relation
from lightmem_hookspecs import graph as g
from lightmem_networkx.plugin import NetworkxOptions, build_networkx

from lightmem_core.testing.conformance.graph_memory import U1, day, ent, rel


def test_discovery_does_not_import_networkx():
    code = """
    import json, sys
    from lightmem_core.plugins import PluginHost
    host = PluginHost()
    print(json.dumps({"registered": "networkx" in host.registry.names("graph_memory"),
                      "networkx": "networkx" in sys.modules}))
    """
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=True
    )
    data = json.loads(out.stdout.strip().splitlines()[-1])
    assert data == {"registered": True, "networkx": False}


_WRITER = """
import sys
from lightmem_hookspecs import BackendContext
from lightmem_networkx.plugin import NetworkxOptions, build_networkx
from lightmem_core.testing.conformance.graph_memory import day, ent, rel

graph = build_networkx(NetworkxOptions(), BackendContext(memory_dir=sys.argv[1]))
print("ready", flush=True)
i = 0
while True:
    where = ["Paris", "London", "Rome"][i % 3]
    graph.index(
        [f"e{i}", f"x{i}"],
        [ent("Alice"), ent(where), ent(f"Thing{i}")],
        [
            rel(f"e{i}", "Alice", "lives_in", where, when=day(i), exclusive=True),
            rel(f"x{i}", "Alice", "owns", f"Thing{i}", when=day(i)),
        ],
    )
    i += 1
"""


def test_a_kill_9_leaves_a_consistent_graph(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(1.5)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    graph = build_networkx(NetworkxOptions(), BackendContext(memory_dir=str(tmp_path)))
    try:
        entries = graph.entry_ids()
        n = len(entries) // 2
        assert n > 3, "the writer made too little progress to test anything"
        assert entries == {f"e{i}" for i in range(n)} | {f"x{i}" for i in range(n)}
        rels = {r.entry_id: r for r in graph.relations()}
        assert set(rels) == entries, "every indexed entry has its relations, no other"
        lives = sorted(
            (r for r in rels.values() if r.relation == "lives_in"), key=lambda r: r.valid_from
        )
        for older, newer in itertools.pairwise(lives):
            assert older.valid_until == newer.valid_from and older.superseded_by == newer.id
        assert lives[-1].valid_until is None
        names = {e.name for e in graph.entities()}
        assert names == {"Alice", "Paris", "London", "Rome"} | {f"Thing{i}" for i in range(n)}
        graph.index(
            ["next"],
            [ent("Alice"), ent("Oslo")],
            [rel("next", "Alice", "lives_in", "Oslo", when=day(n + 1), exclusive=True)],
        )
        assert {
            r.object_name
            for r in graph.relations()
            if r.valid_until is None and r.relation == "lives_in"
        } == {"Oslo"}
    finally:
        graph.close()


def test_a_failed_write_changes_nothing(tmp_path):
    context = BackendContext(memory_dir=str(tmp_path))
    graph = build_networkx(NetworkxOptions(), context)
    first = rel("a", "Alice", "lives_in", "Paris", when=day(0), exclusive=True)
    graph.index(["a"], [ent("Alice"), ent("Paris")], [first])
    blocker = sqlite3.connect(tmp_path / "graph.sqlite", timeout=0)
    blocker.execute("BEGIN EXCLUSIVE")
    graph._db.execute("PRAGMA busy_timeout = 0")
    second = rel("b", "Alice", "lives_in", "Rome", when=day(5), exclusive=True)
    try:
        graph.index(["b"], [ent("Alice"), ent("Rome")], [second])
    except sqlite3.OperationalError:
        pass
    else:  # pragma: no cover - the lock must stop the write
        raise AssertionError("the write went through a locked database")
    finally:
        blocker.rollback()
        blocker.close()
    assert graph.entry_ids() == {"a"}
    assert [r.id for r in graph.relations()] == [first.id]
    assert graph.relations()[0].valid_until is None
    graph.index(["b"], [ent("Alice"), ent("Rome")], [second])
    graph.close()
    again = build_networkx(NetworkxOptions(), context)
    closed = {r.id: r for r in again.relations()}[first.id]
    assert closed.valid_until == day(5)
    again.close()


def test_walk_over_a_thousand_entities_uses_the_multigraph(tmp_path):
    graph = build_networkx(NetworkxOptions(path=None), BackendContext(memory_dir=str(tmp_path)))
    rels: list[Relation] = []
    for i in range(1000):
        rels.append(rel(f"r{i}", f"P{i}", "knows", f"P{i + 1}", when=day(i)))
    rels.append(rel("twice", "P0", "works_with", "P1", when=day(0)))
    entities = [ent(f"P{i}") for i in range(1001)]
    graph.index([r.entry_id for r in rels], entities, rels)
    assert graph.graph.number_of_edges(g.entity_id(U1, "P0"), g.entity_id(U1, "P1")) == 2
    hits = graph.search([g.entity_id(U1, "P500")], limit=10, hops=3)
    assert {h.entry_id for h in hits} == {"r497", "r498", "r499", "r500", "r501", "r502"}
