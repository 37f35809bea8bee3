"""record_store: postgres beyond the conformance suite: migrations, versions, a whole memory."""

from __future__ import annotations

import json
import multiprocessing
import sys
import threading
from pathlib import Path

import psycopg
import pytest
from lightmem_hookspecs import BatchState, Scope
from lightmem_postgres import SchemaTooNewError, plugin
from lightmem_postgres.plugin import PostgresStoreOptions
from lightmem_postgres.records import SCHEMA_KEY, SCHEMA_VERSION, PostgresRecordStore
from psycopg.conninfo import conninfo_to_dict, make_conninfo

import lightmem_core.builtin as builtin
from lightmem_core import LightMemory
from lightmem_core.errors import BackendError
from lightmem_core.testing import fresh_host
from lightmem_core.testing.reference import ReferencePlugin, reference_config

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))  # the children's module, also in the children (spawn)
import workload  # noqa: E402


def test_a_version_1_schema_is_migrated_forward_keeping_its_rows(postgres_dsn, schema):
    options = PostgresStoreOptions(dsn=postgres_dsn, schema=schema)
    old = PostgresRecordStore(options, upto=1)  # the tables as release 1 made them
    assert old.version == 1
    old.close()
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        columns = {
            r[0]
            for r in conn.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = %s AND table_name = 'batches'",
                (schema,),
            )
        }
        assert "claimed_pid" not in columns
        # A batch left running by a version-1 worker, with its message.
        conn.execute(
            f"INSERT INTO {schema}.batches (id, state, scope_key, user_id) "
            "VALUES ('b1', 'running', %s, 'alice')",
            (json.dumps(["alice", None, None]),),
        )
        conn.execute(
            f"INSERT INTO {schema}.messages (id, scope_key, role, content, original_content, "
            "user_id, state, batch_id) VALUES ('m1', %s, 'user', 'hi', 'hi', 'alice', "
            "'batched', 'b1')",
            (json.dumps(["alice", None, None]),),
        )
        # An entry whose revision came from the version-1 sequence (advanced past it).
        conn.execute(f"SELECT nextval('{schema}.revisions') FROM generate_series(1, 4)")
        conn.execute(
            f"INSERT INTO {schema}.entries (id, memory, scope_key, user_id, revision, "
            "created_at, updated_at) VALUES ('e1', 'Alice has a dog', %s, 'alice', 3, now(), "
            "now())",
            (json.dumps(["alice", None, None]),),
        )
    store = PostgresRecordStore(options)
    try:
        assert store.version == SCHEMA_VERSION == 3
        assert store.get_meta(SCHEMA_KEY) == "3"
        # Revisions go on from the sequence's last value.
        assert store.max_revision() == 3
        store.update_entry_text("e1", "Alice has two dogs", "test")
        assert store.max_revision() == 5
        assert [e.id for e in store.entries(changed_since=4)] == ["e1"]
        # Its claimant is unknown, so nobody holds it: claimable at once.
        assert store.batch("b1").state is BatchState.PENDING
        assert store.claim_batch("b1") is not None
        assert [r.message.id for r in store.batch_messages("b1")] == ["m1"]
    finally:
        store.close()


def test_a_schema_newer_than_the_code_is_refused(postgres_dsn, schema):
    options = PostgresStoreOptions(dsn=postgres_dsn, schema=schema)
    PostgresRecordStore(options).close()
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f"UPDATE {schema}.lightmem_meta SET value = '9' WHERE key = %s", (SCHEMA_KEY,))
    with pytest.raises(SchemaTooNewError) as info:
        PostgresRecordStore(options)
    assert "version 9" in str(info.value) and "Upgrade lightmem-postgres" in str(info.value)


def _config(memory_dir, dsn, schema, **overrides):
    server = {"dsn": dsn, "schema": schema}
    return reference_config(
        memory_dir,
        record_store={"model_name": "postgres", "configs": server},
        embedding_retriever={"model_name": "pgvector", "configs": server},
        context_retriever={"model_name": "postgres-fts", "configs": server},
        **overrides,
    )


def _host():
    return fresh_host(builtin, ReferencePlugin(), plugin)


def test_two_memories_on_one_server_share_everything_without_a_directory_lock(
    tmp_path, postgres_dsn, schema
):
    config = _config(tmp_path / "same-dir", postgres_dsn, schema)
    with LightMemory(config, host=_host()) as first, LightMemory(config, host=_host()) as second:
        first.add_memory(
            [{"role": "user", "content": "Alice adopted a grey cat named Miso"}],
            force_segment=True,
            force_extract=True,
            user_id="alice",
        )
        hits = second.search("grey cat", limit=3, user_id="alice")
        assert [h.entry.memory for h in hits] == ["Alice adopted a grey cat named Miso"]
        assert second.search("grey cat", limit=3, user_id="bob") == []
        stats = json.dumps(second.stats(), default=str)
        assert '"engine": "postgres"' in stats
    assert not (tmp_path / "same-dir" / "history.db").exists()


def test_processes_share_one_memory(tmp_path, postgres_dsn, schema):
    config = _config(tmp_path, postgres_dsn, schema)
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    workers = [
        ctx.Process(target=workload.add_then_search, args=(config, f"u{i}", out)) for i in range(3)
    ]
    for w in workers:
        w.start()
    found = [out.get(timeout=120) for _ in workers]
    for w in workers:
        w.join(60)
    assert found == [1, 1, 1]
    with LightMemory(config, host=_host()) as mem:
        assert mem.store.count_entries() == 3
        for i in range(3):
            (hit,) = mem.search("bees", limit=5, user_id=f"u{i}")
            assert hit.entry.memory == f"u{i} keeps bees on the roof"


def test_an_unreachable_server_fails_the_open_naming_the_host(tmp_path, postgres_dsn, schema):
    params = conninfo_to_dict(postgres_dsn)
    dsn = make_conninfo(
        **{**params, "host": "127.0.0.1", "port": "1", "password": "hunter2-secret"},
        connect_timeout=2,
    )
    with pytest.raises(BackendError) as info:
        LightMemory(_config(tmp_path, dsn, schema), host=_host())
    assert "127.0.0.1:1" in str(info.value) and "hunter2-secret" not in str(info.value)
    assert type(info.value.__cause__).__name__ == "ServerUnreachableError"


def test_export_import_moves_a_memory_to_postgres_and_back(tmp_path, postgres_dsn, schema):
    from lightmem_core.transfer import export_memory, import_memory

    facts = ["Alice adopted a grey cat named Miso", "Bob is training for the Lisbon marathon"]
    questions = [("alice", "grey cat"), ("bob", "Lisbon marathon")]

    def answers(mem):
        return [[h.entry.memory for h in mem.search(q, limit=2, user_id=u)] for u, q in questions]

    with LightMemory(reference_config(tmp_path / "embedded"), host=_host()) as mem:
        for user, text in zip(("alice", "bob"), facts, strict=True):
            mem.add_memory(
                [{"role": "user", "content": text}],
                force_segment=True,
                force_extract=True,
                user_id=user,
            )
        before = answers(mem)
        export_memory(mem, tmp_path / "a.jsonl")
    with LightMemory(_config(tmp_path / "pg", postgres_dsn, schema), host=_host()) as mem:
        report = import_memory(mem, tmp_path / "a.jsonl")
        assert report.entries_added == 2 and not report.reembedded
        assert import_memory(mem, tmp_path / "a.jsonl").entries_added == 0
        assert answers(mem) == before
        export_memory(mem, tmp_path / "b.jsonl")
    with LightMemory(reference_config(tmp_path / "back"), host=_host()) as mem:
        assert import_memory(mem, tmp_path / "b.jsonl").entries_added == 2
        assert answers(mem) == before


def test_erase_removes_one_users_rows_and_index_records(tmp_path, postgres_dsn, schema):
    config = _config(tmp_path, postgres_dsn, schema)
    with LightMemory(config, host=_host()) as mem:
        for user in ("alice", "bob"):
            mem.add_memory(
                [{"role": "user", "content": f"{user} keeps bees on the roof"}],
                force_segment=True,
                force_extract=True,
                user_id=user,
            )
        mem.erase(user_id="alice")
        assert mem.search("bees", limit=5, user_id="alice") == []
        assert [h.entry.memory for h in mem.search("bees", limit=5, user_id="bob")] == [
            "bob keeps bees on the roof"
        ]
        assert mem.store.journal(scope=Scope(user_id="alice")) == []
        assert mem.store.count_entries(status=None) == 1 and mem.vector_index.count() == 1


def test_a_revision_taken_later_never_commits_earlier(postgres_dsn, schema):
    """Two writers: A's transaction is held up (a row it updates is locked by a third
    connection) while B commits; a reader's watermark taken after B's commit must not pass over
    A's entry when A commits afterwards."""
    from lightmem_hookspecs import MemoryEntry, Message

    store = PostgresRecordStore(PostgresStoreOptions(dsn=postgres_dsn, schema=schema))
    batches = {}
    for user in ("alice", "bob"):
        scope = Scope(user_id=user)
        store.add_messages(
            [Message(id=f"m-{user}", role="user", content="hi", original_content="hi", scope=scope)]
        )
        store.assign_segments({f"m-{user}": 1}, scope=scope)
        batches[user] = store.create_batch([f"m-{user}"], scope=scope)
        assert store.claim_batch(batches[user]) is not None

    def entry(user):
        scope = Scope(user_id=user)
        return MemoryEntry(id=f"e-{user}", memory=f"{user} said hi", scope=scope)

    blocker = psycopg.connect(postgres_dsn)
    blocker.execute(f"SELECT 1 FROM {schema}.messages WHERE id = 'm-alice' FOR UPDATE")
    done = threading.Event()
    alice = threading.Thread(
        target=lambda: (store.complete_batch(batches["alice"], [entry("alice")]), done.set())
    )
    alice.start()
    try:
        with psycopg.connect(postgres_dsn, autocommit=True) as watch:
            for _ in range(200):  # until alice's transaction waits for the locked row
                waiting = watch.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND query LIKE %s",
                    (f"%{schema}%messages%",),
                ).fetchone()[0]
                if waiting or done.wait(0.05):
                    break
        assert not done.is_set(), "alice's transaction was not held up"
        store.complete_batch(batches["bob"], [entry("bob")])
        watermark = store.max_revision()
        assert [e.id for e in store.entries(changed_since=watermark - 1)] == ["e-bob"]
    finally:
        blocker.rollback()
        blocker.close()
        alice.join(timeout=30)
    assert done.is_set()
    assert [e.id for e in store.entries(changed_since=watermark)] == ["e-alice"]
    store.close()


def test_steps_that_skip_the_flush_wait_are_seen_at_once_and_leave_the_session_durable(
    postgres_dsn, schema
):
    """Usage rows, claims, segment and batch moves and index marks commit without waiting for
    the WAL flush, each in its own transaction: other sessions see them at once, and the
    pool's connection still makes every later commit (the journal's) wait for the flush."""
    from lightmem_hookspecs import Message, Usage

    options = PostgresStoreOptions(dsn=postgres_dsn, schema=schema, pool_max_size=1)
    store = PostgresRecordStore(options)
    scope = Scope(user_id="alice")
    try:
        store.add_usage("search", Usage(embedder_calls=1, embedded_texts=2))
        store.add_usage("search", Usage(embedder_calls=1, embedded_texts=3))
        store.add_messages(
            [Message(id="m1", role="user", content="hi", original_content="hi", scope=scope)]
        )
        store.assign_segments({"m1": 7}, scope=scope)
        batch = store.create_batch(["m1"], scope=scope)
        assert store.claim_batch(batch) is not None
        store.release_batch(batch)
        with psycopg.connect(postgres_dsn, autocommit=True) as other:
            row = other.execute(
                f"SELECT embedder_calls, embedded_texts FROM {schema}.usage "
                "WHERE operation = 'search'"
            ).fetchone()
            assert row == (2, 5)
            assert other.execute(
                f"SELECT state, topic_id, batch_id FROM {schema}.messages"
            ).fetchall() == [("batched", 7, batch)]
            assert other.execute(f"SELECT state FROM {schema}.batches").fetchall() == [("pending",)]
        with store.db.connection() as conn:  # the pool's one connection, used by all of them
            assert conn.execute("SHOW synchronous_commit").fetchone() == ("on",)
            assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    finally:
        store.close()


def test_restored_entries_keep_their_fields_sources_and_order_and_come_once(postgres_dsn, schema):
    import datetime as dt

    from lightmem_hookspecs import MemoryEntry

    at = dt.datetime(2023, 5, 1, 12, 30, tzinfo=dt.UTC)
    entries = [
        MemoryEntry(
            id=f"e{i}",
            memory=f"fact {i}",
            source_message_ids=(f"m{i}b", f"m{i}a", f"m{i}c"),
            time_stamp=at,
            speaker_name="Caroline",
            topic_id=i,
            scope=Scope(user_id="alice", run_id="r1"),
            keywords=("k", str(i)),
            importance=i,
            status="superseded" if i == 2 else "active",
            created_at=at,
            updated_at=at + dt.timedelta(days=i),
            metadata={"n": i},
        )
        for i in range(5)
    ]
    store = PostgresRecordStore(PostgresStoreOptions(dsn=postgres_dsn, schema=schema))
    try:
        order = [entries[3], entries[0], entries[1], entries[2], entries[4]]
        assert [e.id for e in store.restore_entries(order)] == ["e3", "e0", "e1", "e2", "e4"]
        assert store.restore_entries(entries) == []
        got = {e.id: e for e in store.entries(status=None)}
        assert [e.id for e in store.entries(status=None)] == ["e3", "e0", "e1", "e2", "e4"]
        for want in entries:
            e = got[want.id]
            assert e.source_message_ids == want.source_message_ids
            assert (e.memory, e.time_stamp, e.topic_id, e.scope, e.keywords) == (
                want.memory,
                want.time_stamp,
                want.topic_id,
                want.scope,
                want.keywords,
            )
            assert (e.status, e.importance, e.created_at, e.updated_at) == (
                want.status,
                want.importance,
                want.created_at,
                want.updated_at,
            )
            assert e.metadata == {"n": want.id[1:] and int(want.id[1:])}
        assert len(store.entries(unindexed_only=True)) == 4  # the active ones, not indexed yet
    finally:
        store.close()
