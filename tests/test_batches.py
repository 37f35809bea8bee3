"""Extraction batches as typed records: states, claims, the one-query lookups, the migration."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading

from lightmem_hookspecs import Batch, BatchState, Message, RecordStore, Scope

from lightmem_core import LightMemory
from lightmem_core.store import SCHEMA_VERSION, SQLiteRecordStore
from lightmem_core.testing.reference import reference_config

ALICE, BOB = Scope("alice"), Scope("bob")


def _batch_of(store: SQLiteRecordStore, scope: Scope, *ids: str) -> str:
    store.add_messages([Message(i, "user", f"text {i}", f"text {i}", scope=scope) for i in ids])
    store.assign_segments(dict.fromkeys(ids, 0), scope=scope)
    rows = store.journal("short_term", scope)
    return store.create_batch([r.message.id for r in rows], scope=scope)


def test_the_sqlite_store_implements_the_contracts_interface(tmp_path):
    store = SQLiteRecordStore(tmp_path / "h.db")
    assert isinstance(store, RecordStore)
    store.close()


def test_batches_carry_state_scope_and_retry_time_and_are_found_by_state(tmp_path):
    store = SQLiteRecordStore(tmp_path / "h.db")
    a1 = _batch_of(store, ALICE, "a1")
    a2 = _batch_of(store, ALICE, "a2")
    b1 = _batch_of(store, BOB, "b1")
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    store.set_batch_state(a1, BatchState.HELD, error="over this call's budget", attempted=True)
    store.set_batch_state(b1, BatchState.WAITING_FOR_BUDGET, error="hourly", retry_at=later)

    held = store.batch(a1)
    assert held == Batch(
        id=a1,
        state=BatchState.HELD,
        scope=ALICE,
        attempts=1,
        error="over this call's budget",
        retry_at=None,
        created_at=held.created_at,
        updated_at=held.updated_at,
    )
    assert store.batch(b1).retry_at == later and store.batch(b1).scope == BOB
    assert [b.id for b in store.batches([BatchState.HELD], scope=ALICE)] == [a1]
    assert store.batches([BatchState.HELD], scope=BOB) == []
    both = [BatchState.HELD, BatchState.WAITING_FOR_BUDGET]
    assert [b.id for b in store.batches(both)] == [a1, b1]
    assert store.pending_batches() == [a1, a2, b1]
    # due now: the pending one; the waiting one at its time; the held one never
    now = dt.datetime.now(dt.UTC)
    scheduled = [BatchState.PENDING, BatchState.FAILED, BatchState.WAITING_FOR_BUDGET]
    assert [b.id for b in store.batches(scheduled, due_by=now)] == [a2]
    assert [b.id for b in store.batches(scheduled, due_by=later)] == [a2, b1]
    assert store.next_retry_at() == later
    assert store.stats()["batches"] == {"held": 1, "pending": 1, "waiting_for_budget": 1}
    store.close()


def test_a_batch_is_claimed_by_exactly_one_worker(tmp_path):
    store = SQLiteRecordStore(tmp_path / "h.db")
    batch_id = _batch_of(store, ALICE, "m1")
    wins: list[Batch] = []
    start = threading.Barrier(8)

    def worker() -> None:
        start.wait()
        claimed = store.claim_batch(batch_id)
        if claimed is not None:
            wins.append(claimed)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1 and wins[0].state is BatchState.RUNNING
    assert store.claim_batch(batch_id) is None
    store.release_batch(batch_id)  # given up without a verdict: pending, claimable again
    assert store.batch(batch_id).state is BatchState.PENDING
    assert store.claim_batch(batch_id) is not None
    stored = store.complete_batch(batch_id, [])
    assert stored == [] and store.batch(batch_id).state is BatchState.DONE
    assert store.claim_batch(batch_id) is None
    store.close()


def test_a_claim_left_by_a_process_that_died_is_released_when_the_store_opens(tmp_path):
    store = SQLiteRecordStore(tmp_path / "h.db")
    batch_id = _batch_of(store, ALICE, "m1")
    assert store.claim_batch(batch_id) is not None
    store.close()  # the process dies mid-extraction
    reopened = SQLiteRecordStore(tmp_path / "h.db")
    assert reopened.batch(batch_id).state is BatchState.PENDING
    reopened.close()


def test_the_rest_of_a_completed_batch_keeps_its_scope_and_state(tmp_path):
    store = SQLiteRecordStore(tmp_path / "h.db")
    batch_id = _batch_of(store, BOB, "m1", "m2")
    store.claim_batch(batch_id)
    store.complete_batch(batch_id, [], unextracted=["m2"], rest_state=BatchState.HELD, error="e")
    (rest,) = store.batches()
    assert (rest.state, rest.scope, rest.error, rest.retry_at) == (BatchState.HELD, BOB, "e", None)
    assert [r.message.id for r in store.batch_messages(rest.id)] == ["m2"]
    store.close()


def _batch_queries(store: SQLiteRecordStore) -> list[str]:
    seen: list[str] = []
    store._db.set_trace_callback(
        lambda sql: seen.append(sql) if "FROM batches" in sql and "SELECT" in sql else None
    )
    return seen


def test_held_batches_are_found_by_one_indexed_query_whatever_is_pending(tmp_path, ref_host):
    cfg = {**reference_config(tmp_path / "m"), "background_retry": False}
    with LightMemory(cfg, host=ref_host) as mem:
        store = mem.store
        for n in range(30):  # pending batches of other scopes
            _batch_of(store, Scope(f"user{n}"), f"p{n}")
        seen = _batch_queries(store)
        held = mem._ingestion.held_batches(ALICE)
        store._db.set_trace_callback(None)
        assert held == [] and len(seen) == 1
        plan = store._db.execute(
            "EXPLAIN QUERY PLAN SELECT * FROM batches WHERE state IN (?) AND scope_key = ?",
            ("held", "x"),
        ).fetchall()
        assert any("batches_state" in str(tuple(row)) for row in plan)


def _v2_store(path) -> dict[str, str]:
    """A record store as schema version 2 wrote it: a held batch with a retry time in the year
    9999, a batch waiting for the budget marked by its error's prefix, a failed one, a done
    one."""
    db = sqlite3.connect(path)
    db.executescript(
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('schema_version', '2');
        CREATE TABLE messages (
            seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL, scope_key TEXT NOT NULL,
            role TEXT NOT NULL, content TEXT NOT NULL, original_content TEXT NOT NULL,
            time_stamp TEXT, speaker_id TEXT, speaker_name TEXT,
            user_id TEXT, agent_id TEXT, run_id TEXT, metadata TEXT NOT NULL DEFAULT '{}',
            state TEXT NOT NULL DEFAULT 'sensory', topic_id INTEGER, batch_id TEXT,
            created_at TEXT NOT NULL, UNIQUE (scope_key, id));
        CREATE TABLE batches (id TEXT PRIMARY KEY, state TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, next_attempt_at TEXT,
            created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
        INSERT INTO batches VALUES ('held', 'failed', 1,
            'waiting for the LLM token budget of one add_memory call: ...',
            '9999-12-31T00:00:00.000000+00:00', '2024-01-01T00:00:01', '2024-01-01');
        INSERT INTO batches VALUES ('waiting', 'failed', 1,
            'waiting for the LLM token budget: extraction resumes at 2024-01-01T01:00:00',
            '2024-01-01T01:00:00.000000+00:00', '2024-01-01T00:00:02', '2024-01-01');
        INSERT INTO batches VALUES ('failed', 'failed', 2, 'BackendError: down',
            '2024-01-01T00:05:00.000000+00:00', '2024-01-01T00:00:03', '2024-01-01');
        INSERT INTO batches VALUES ('done', 'done', 1, NULL, NULL,
            '2024-01-01T00:00:00', '2024-01-01');
        """
    )
    scopes = {"held": "alice", "waiting": "bob", "failed": "alice", "done": "carol"}
    for n, (batch_id, user) in enumerate(scopes.items()):
        db.execute(
            "INSERT INTO messages (id, scope_key, role, content, original_content, user_id, "
            "state, batch_id, created_at) VALUES (?, ?, 'user', 'x', 'x', ?, ?, ?, '2024')",
            (
                f"m{n}",
                json.dumps([user, None, None]),
                user,
                "extracted" if batch_id == "done" else "batched",
                batch_id,
            ),
        )
    db.commit()
    db.close()
    return scopes


def test_a_schema_2_store_is_migrated_to_batch_states(tmp_path):
    scopes = _v2_store(tmp_path / "history.db")
    store = SQLiteRecordStore(tmp_path / "history.db")
    assert store.get_meta("schema_version") == str(SCHEMA_VERSION) == "3"
    found = {b.id: b for b in store.batches(BatchState)}
    assert {k: b.state for k, b in found.items()} == {
        "held": BatchState.HELD,
        "waiting": BatchState.WAITING_FOR_BUDGET,
        "failed": BatchState.FAILED,
        "done": BatchState.DONE,
    }
    assert {k: b.scope for k, b in found.items()} == {k: Scope(u) for k, u in scopes.items()}
    assert found["held"].retry_at is None  # no longer a date in the year 9999
    assert found["waiting"].retry_at == dt.datetime(2024, 1, 1, 1, tzinfo=dt.UTC)
    assert found["failed"].attempts == 2 and found["failed"].error == "BackendError: down"
    assert [b.id for b in store.batches([BatchState.HELD], scope=Scope("alice"))] == ["held"]
    store.close()


def test_a_migrated_memory_takes_its_held_batch_up_in_the_next_add(tmp_path, ref_host):
    _v2_store(tmp_path / "history.db")
    cfg = {**reference_config(tmp_path), "background_retry": False}
    with LightMemory(cfg, host=ref_host) as mem:
        assert mem.stats()["budget"]["held_batches"] == 1
        mem.retry()
        assert mem.store.pending_batches() == []
        assert {e.source_message_ids for e in mem.get_all(user_id="alice")} == {("m0",), ("m2",)}
