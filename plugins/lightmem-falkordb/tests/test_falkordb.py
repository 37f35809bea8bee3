"""The FalkorDB graph memory: lazy import, a server restart and a server kill -9, errors."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from lightmem_falkordb.plugin import FalkorOptions, build_falkordb
from lightmem_falkordb.server import LocalServer, runnable
from lightmem_hookspecs import BackendContext

from lightmem_core.testing.conformance.graph_memory import ALICE, day, ent, rel


def test_discovery_does_not_import_the_client():
    code = """
    import json, sys
    from lightmem_core.plugins import PluginHost
    host = PluginHost()
    print(json.dumps({"registered": "falkordb" in host.registry.names("graph_memory"),
                      "imported": sorted(m for m in ("falkordb", "redis") if m in sys.modules)}))
    """
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"registered": True, "imported": []}


def _moves(graph):
    for i, where in enumerate(["Paris", "London", "Rome"]):
        graph.index(
            [f"m{i}"],
            [ent("Alice", aliases=("Ally",)), ent(where)],
            [rel(f"m{i}", "Alice", "lives_in", where, when=day(10 * i), exclusive=True)],
        )


@pytest.mark.parametrize("kill", [False, True], ids=["restart", "kill -9"])
def test_the_graph_survives_the_server(tmp_path, kill):
    reason = runnable()
    if reason is not None:
        pytest.skip(f"the packaged FalkorDB server cannot run here: {reason}")
    server = LocalServer(tmp_path / "data").start()
    # What is tested is what survives, not how fast: a busy machine may hold a reply for long.
    options = FalkorOptions(port=server.port, graph="survivor", timeout=120.0)
    context = BackendContext(memory_dir=str(tmp_path))
    try:
        graph = build_falkordb(options, context)
        _moves(graph)
        before = {r.id: r for r in graph.relations()}
        hits = [(h.entry_id, h.score) for h in graph.search([ALICE], limit=10, hops=1)]
        graph.close()
        server.stop(kill=kill)
        server = LocalServer(tmp_path / "data", port=server.port).start()
        again = build_falkordb(options, context)
        assert {r.id: r for r in again.relations()} == before
        assert again.entry_ids() == {"m0", "m1", "m2"}
        assert [e.id for e in again.resolve(["ally"])] == [ALICE]
        assert [(h.entry_id, h.score) for h in again.search([ALICE], limit=10, hops=1)] == hits
        again.close()
    finally:
        server.stop()
        print(f"server log (shown when the test fails):\n{server.log_tail()}")


def test_a_server_that_cannot_start_says_why_from_its_log(falkordb_server, tmp_path):
    from lightmem_falkordb.server import ServerUnavailable

    taken = LocalServer(tmp_path / "second", port=falkordb_server.port)
    with pytest.raises(ServerUnavailable) as info:
        taken.start(timeout=30)
    message = str(info.value)
    assert f"port {falkordb_server.port} is held by another server" in message
    assert "Address already in use" in message  # from our server's log
    assert taken.process is None  # ours was stopped
    assert taken.log_tail() in (tmp_path / "second" / "server.log").read_text()


def test_a_user_server_is_reached_by_host_and_port(falkordb_server, graph_name, tmp_path):
    options = FalkorOptions(host="127.0.0.1", port=falkordb_server.port, graph=graph_name)
    graph = build_falkordb(options, BackendContext(memory_dir=str(tmp_path)))
    try:
        graph.index(["a"], [ent("Alice"), ent("Bob")], [rel("a", "Alice", "met", "Bob")])
        assert graph.count() == 1
        assert graph.db.connection.connection_pool.connection_kwargs["port"] == falkordb_server.port
    finally:
        graph.drop()
        graph.close()


def test_options_are_checked():
    with pytest.raises(ValueError, match="port"):
        FalkorOptions(port=70000)
    with pytest.raises(ValueError, match="graph"):
        FalkorOptions(graph=" ")


def test_no_server_is_a_clear_error(tmp_path):
    from lightmem_falkordb.server import free_port

    with pytest.raises(Exception, match=r"(?i)connect"):
        build_falkordb(FalkorOptions(port=free_port()), BackendContext(memory_dir=str(tmp_path)))
