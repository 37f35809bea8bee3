"""Conformance suite for ``record_store`` backends (the system of record: SQLite, Postgres, ...).

Subclass :class:`RecordStoreConformance` in your plugin's tests and provide a factory::

    import functools
    import pytest
    from lightmem_core.testing.conformance.record_store import RecordStoreConformance

    class TestMyStore(RecordStoreConformance):
        @pytest.fixture
        def make_store(self, tmp_path):
            return functools.partial(MyStore, tmp_path / "records")   # picklable

Fixtures and attributes the subclass provides:

``make_store`` (required, function scope)
    A callable taking no arguments that returns a NEW, open
    :class:`~lightmem_hookspecs.RecordStore`; every call within one test addresses the same
    storage, which is empty at the start of the test. It must be **picklable** (a
    ``functools.partial`` of a class or of a module-level function): the suite calls it in
    child processes too (several processes claiming batches at once; a process killed with
    ``SIGKILL`` while it writes). The suite closes what it makes.

What is checked: the object is a ``RecordStore``; journaling is idempotent (the same message
id twice in one scope stores once; in another scope it is another message); scopes are exact
(no message, batch or entry of one scope is visible from another, an unset field matching only
unset); the batch life cycle (pending, claimed once, released, failed, held, waiting for the
budget, done) with ``batches`` filtered by state, scope and due time; a batch claimed by
exactly one of several PROCESSES claiming at once; ``complete_batch`` atomic (a failure in the
middle leaves no entry, the batch unfinished and its messages unextracted) and idempotent;
``unextracted`` messages moved to a new batch; history kept for every change (add, update,
delete, supersede); usage summed per operation; the update queue; everything kept across a
reopen; and after a process is killed with ``SIGKILL`` in the middle of a ``complete_batch``
of a batch it claimed, a new instance finds the journal intact, nothing of the batch written,
and the batch claimable again.

The optional capabilities are checked where the store offers them (skipped otherwise):
:class:`~lightmem_hookspecs.EntryFacets` (segment and speaker of the active entries asked for),
:class:`~lightmem_hookspecs.EntryPositions` (places in the order entries were stored, one apart
within a batch, kept by a retired entry), :class:`~lightmem_hookspecs.EntryRestore` (entries
restored with their ids, statuses, time stamps, scopes and provenance, no history row written,
unindexed, with a new revision; ids already stored or repeated skipped; history rows appended
with their own time stamps) and :class:`~lightmem_hookspecs.ScopeErase` (every message, batch,
entry, history row and queued update of the matching scopes removed, the counts and ids
returned, other scopes untouched).
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import attrs
import pytest
from lightmem_hookspecs import (
    BatchState,
    EntryFacets,
    EntryPositions,
    EntryRestore,
    MemoryEntry,
    Message,
    RecordStore,
    Scope,
    ScopeErase,
    Usage,
)

from .capabilities import require

ALICE = Scope(user_id="alice")
ALICE_BOT = Scope(user_id="alice", agent_id="bot")
BOB = Scope(user_id="bob")
T0 = dt.datetime(2024, 3, 2, 9, 15, tzinfo=dt.UTC)


def message(mid: str, content: str = "", scope: Scope = ALICE, minute: int = 0) -> Message:
    text = content or f"message {mid}"
    return Message(
        id=mid,
        role="user",
        content=text,
        original_content=text,
        time_stamp=T0 + dt.timedelta(minutes=minute),
        speaker_name="Alice",
        scope=scope,
        metadata={"n": minute},
    )


def entry(eid: str, memory: str, sources: Sequence[str], scope: Scope = ALICE) -> MemoryEntry:
    return MemoryEntry(
        id=eid,
        memory=memory,
        source_message_ids=tuple(sources),
        time_stamp=T0,
        speaker_name="Alice",
        topic_id=1,
        scope=scope,
        keywords=("k1", "k2"),
        importance=0.5,
        metadata={"origin": "conformance"},
    )


def batched(store: Any, ids: Sequence[str], scope: Scope = ALICE) -> str:
    """Journal messages ``ids`` in ``scope``, move them to short-term, then into a batch."""
    store.add_messages([message(i, scope=scope, minute=n) for n, i in enumerate(ids)])
    topic = store.allocate_topic_ids(1)[0]
    store.assign_segments(dict.fromkeys(ids, topic), scope=scope)
    batch_id: str = store.create_batch(list(ids), scope=scope)
    return batch_id


class _FailsAfterFirst(Sequence[MemoryEntry]):
    """Entries whose iteration fails after the first: a crash in the middle of a write."""

    def __init__(self, entries: Sequence[MemoryEntry], on_fail: Callable[[], None]) -> None:
        self.items, self.on_fail = list(entries), on_fail

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: Any) -> Any:
        return self.items[i]

    def __iter__(self) -> Iterator[MemoryEntry]:
        yield self.items[0]
        self.on_fail()
        yield from self.items[1:]


class _Crash(Exception):
    pass


def _raise_crash() -> None:
    raise _Crash("the process failed in the middle of complete_batch")


def _kill_myself() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


# -- child processes (module level: they are started with "spawn") -------------------------------


def _claim_all(make_store: Callable[[], Any], batch_ids: list[str], barrier: Any, out: Any) -> None:
    store = make_store()
    try:
        barrier.wait(60)
        out.put((os.getpid(), [b for b in batch_ids if store.claim_batch(b) is not None]))
        # Every worker stays alive until all have claimed: a closed store's claims may be
        # given back (its claimant is gone), and that is not a double claim.
        barrier.wait(60)
    finally:
        store.close()


def _claim_then_die_mid_complete(make_store: Callable[[], Any], batch_id: str) -> None:
    store = make_store()
    store.add_messages([message("late-1", minute=90)])  # committed before the kill
    assert store.claim_batch(batch_id) is not None
    entries = [entry(f"{batch_id}-e{i}", f"fact {i}", ["k1"]) for i in range(3)]
    store.complete_batch(batch_id, _FailsAfterFirst(entries, _kill_myself))


def _spawn() -> Any:
    return multiprocessing.get_context("spawn")


class RecordStoreConformance:
    """The ``RecordStore`` contract. Needs ``make_store`` (see the module docstring)."""

    #: How many processes claim the same batches at once.
    claimers: int = 4

    @pytest.fixture
    def new_store(self, make_store):
        made: list[Any] = []

        def build() -> Any:
            instance = make_store()
            made.append(instance)
            return instance

        yield build
        for instance in reversed(made):
            instance.close()

    @pytest.fixture
    def store(self, new_store):
        return new_store()

    # -- the protocol ---------------------------------------------------------------------------

    def test_is_a_record_store(self, store):
        assert isinstance(store, RecordStore)

    def test_meta(self, store):
        assert store.get_meta("conformance-key") is None
        store.set_meta("conformance-key", "one")
        store.set_meta("conformance-key", "two")
        assert store.get_meta("conformance-key") == "two"

    # -- journal --------------------------------------------------------------------------------

    def test_journaling_is_idempotent(self, store):
        first = store.add_messages([message("m1"), message("m2", minute=1)])
        assert [m.id for m in first] == ["m1", "m2"]
        again = store.add_messages([message("m1"), message("m2", minute=1), message("m3")])
        assert [m.id for m in again] == ["m3"]
        assert [r.message.id for r in store.journal(scope=ALICE)] == ["m1", "m2", "m3"]
        assert {r.state for r in store.journal()} == {"sensory"}

    def test_journal_keeps_every_field(self, store):
        sent = message("m1", "My dog is called Biscuit", minute=5)
        store.add_messages([sent])
        (row,) = store.journal(scope=ALICE)
        got = row.message
        assert (got.id, got.role, got.content, got.original_content) == (
            sent.id,
            sent.role,
            sent.content,
            sent.original_content,
        )
        assert got.time_stamp == sent.time_stamp
        assert got.speaker_name == "Alice" and got.scope == ALICE
        assert dict(got.metadata) == {"n": 5}
        assert store.messages_by_id(["m1"], scope=ALICE)["m1"].content == sent.content

    def test_the_same_id_in_another_scope_is_another_message(self, store):
        store.add_messages([message("m1", "alice's", scope=ALICE)])
        added = store.add_messages([message("m1", "bob's", scope=BOB)])
        assert [m.scope for m in added] == [BOB]
        assert store.messages_by_id(["m1"], scope=BOB)["m1"].content == "bob's"
        assert store.messages_by_id(["m1"], scope=ALICE)["m1"].content == "alice's"

    def test_scopes_are_exact(self, store):
        a = batched(store, ["a1", "a2"], ALICE)
        b = batched(store, ["b1"], ALICE_BOT)
        c = batched(store, ["c1"], BOB)
        assert [r.message.id for r in store.journal(scope=ALICE)] == ["a1", "a2"]
        assert [r.message.id for r in store.journal(scope=ALICE_BOT)] == ["b1"]
        assert store.journal(scope=Scope(user_id="nobody")) == []
        assert store.messages_by_id(["b1", "c1"], scope=ALICE) == {}
        assert [x.id for x in store.batches(scope=ALICE)] == [a]
        assert [x.id for x in store.batches(scope=BOB)] == [c]
        assert store.batch(b).scope == ALICE_BOT
        for batch_id, scope in ((a, ALICE), (b, ALICE_BOT), (c, BOB)):
            assert store.claim_batch(batch_id) is not None
            store.complete_batch(batch_id, [entry(f"{batch_id}-e", "fact", ["x"], scope)])
        assert [e.scope for e in store.entries(scope=ALICE)] == [ALICE]
        assert [e.scope for e in store.entries(scope=ALICE_BOT)] == [ALICE_BOT]
        assert store.entries(scope=Scope(agent_id="bot")) == []
        assert len(store.entries()) == 3

    def test_segments_move_messages_atomically(self, store):
        store.add_messages([message("m1"), message("m2", minute=1), message("m3", minute=2)])
        topic = store.allocate_topic_ids(2)
        assert len(set(topic)) == 2 and store.allocate_topic_ids(1)[0] not in topic
        store.assign_segments(
            {"m1": topic[0], "m2": topic[1]},
            scope=ALICE,
            contents={"m1": "m1 short"},
            dropped=["m3"],
        )
        states = {r.message.id: (r.state, r.topic_id) for r in store.journal(scope=ALICE)}
        assert states == {
            "m1": ("short_term", topic[0]),
            "m2": ("short_term", topic[1]),
            "m3": ("dropped", None),
        }
        assert store.messages_by_id(["m1"], scope=ALICE)["m1"].content == "m1 short"

    # -- batches --------------------------------------------------------------------------------

    def test_batch_life_cycle(self, store):
        batch_id = batched(store, ["m1", "m2"])
        assert store.batch(batch_id).state is BatchState.PENDING
        assert [r.message.id for r in store.batch_messages(batch_id)] == ["m1", "m2"]
        assert store.pending_batches() == [batch_id]
        claimed = store.claim_batch(batch_id)
        assert claimed is not None and claimed.state is BatchState.RUNNING
        assert store.claim_batch(batch_id) is None  # claimed already
        store.release_batch(batch_id)
        assert store.batch(batch_id).state is BatchState.PENDING
        assert store.claim_batch(batch_id) is not None
        stored = store.complete_batch(batch_id, [entry("e1", "Alice has a dog", ["m1", "m2"])])
        assert [e.id for e in stored] == ["e1"]
        assert store.batch(batch_id).state is BatchState.DONE
        assert store.claim_batch(batch_id) is None
        assert store.pending_batches() == []
        assert {r.state for r in store.batch_messages(batch_id)} == {"extracted"}
        (got,) = store.entries(scope=ALICE)
        assert got.source_message_ids == ("m1", "m2") and got.keywords == ("k1", "k2")
        assert got.scope == ALICE and got.time_stamp == T0 and got.topic_id == 1
        assert got.created_at is not None and got.metadata["origin"] == "conformance"
        assert store.claim_batch("no-such-batch") is None and store.batch("no-such-batch") is None

    def test_batch_states_and_due_times(self, store):
        failed, held, waiting = (batched(store, [f"m{i}"]) for i in range(3))
        soon = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
        later = soon + dt.timedelta(hours=1)
        store.set_batch_state(
            failed, BatchState.FAILED, error="boom", retry_at=soon, attempted=True
        )
        store.set_batch_state(held, BatchState.HELD, error="over the call's budget")
        store.set_batch_state(waiting, BatchState.WAITING_FOR_BUDGET, retry_at=later)
        info = store.batch(failed)
        assert (info.state, info.error, info.attempts) == (BatchState.FAILED, "boom", 1)
        assert info.retry_at is not None and abs((info.retry_at - soon).total_seconds()) < 1
        assert [b.id for b in store.batches([BatchState.HELD])] == [held]
        assert [b.id for b in store.batches([BatchState.HELD], scope=BOB)] == []
        now = dt.datetime.now(dt.UTC)
        due = {
            b.id
            for b in store.batches([BatchState.FAILED, BatchState.WAITING_FOR_BUDGET], due_by=now)
        }
        assert due == set()
        due = {b.id for b in store.batches(due_by=soon + dt.timedelta(seconds=1))}
        assert failed in due and waiting not in due
        assert abs((store.next_retry_at() - soon).total_seconds()) < 1
        with pytest.raises(ValueError):
            store.set_batch_state(failed, BatchState.DONE)
        assert store.claim_batch(held) is not None  # a held batch may be claimed by a call

    def test_merge_batches(self, store):
        first, second = batched(store, ["m1"]), batched(store, ["m2"])
        assert store.merge_batches([first, second]) == second
        assert store.batch(first) is None
        assert [r.message.id for r in store.batch_messages(second)] == ["m1", "m2"]
        assert store.claim_batch(second) is not None
        third = batched(store, ["m3"])
        with pytest.raises(ValueError):
            store.merge_batches([third, second])  # a claimed batch is not merged

    def test_complete_batch_twice_stores_once(self, store):
        batch_id = batched(store, ["m1"])
        store.claim_batch(batch_id)
        facts = [entry("e1", "fact one", ["m1"]), entry("e2", "fact two", ["m1"])]
        assert len(store.complete_batch(batch_id, facts)) == 2
        assert store.complete_batch(batch_id, facts) == []
        assert store.count_entries() == 2 and len(store.history()) == 2

    def test_complete_batch_is_atomic(self, store):
        batch_id = batched(store, ["m1", "m2"])
        store.claim_batch(batch_id)
        facts = [entry(f"e{i}", f"fact {i}", ["m1"]) for i in range(3)]
        with pytest.raises(_Crash):
            store.complete_batch(
                batch_id, _FailsAfterFirst(facts, _raise_crash), unextracted=["m2"]
            )
        assert store.count_entries(status=None) == 0 and store.history() == []
        assert store.batch(batch_id).state is not BatchState.DONE
        assert {r.state for r in store.batch_messages(batch_id)} == {"batched"}
        assert [b.id for b in store.batches()] == [batch_id]  # no rest batch either
        store.release_batch(batch_id)
        assert store.claim_batch(batch_id) is not None
        assert len(store.complete_batch(batch_id, facts)) == 3

    def test_unextracted_messages_move_to_a_new_batch(self, store):
        batch_id = batched(store, ["m1", "m2", "m3"])
        store.claim_batch(batch_id)
        retry = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)
        store.complete_batch(
            batch_id,
            [entry("e1", "fact", ["m1"])],
            unextracted=["m2", "m3"],
            rest_state=BatchState.HELD,
            error="cut at the token limit",
            retry_at=retry,
        )
        (rest,) = store.batches()
        assert rest.id != batch_id and rest.state is BatchState.HELD and rest.scope == ALICE
        assert rest.error == "cut at the token limit"
        assert [r.message.id for r in store.batch_messages(rest.id)] == ["m2", "m3"]
        assert {r.state for r in store.batch_messages(rest.id)} == {"batched"}
        assert [r.state for r in store.batch_messages(batch_id)] == ["extracted"]

    def test_a_batch_is_claimed_by_exactly_one_of_several_processes(self, store, make_store):
        batch_ids = [batched(store, [f"m{i}-{k}" for k in range(2)]) for i in range(24)]
        ctx = _spawn()
        barrier, out = ctx.Barrier(self.claimers), ctx.Queue()
        workers = [
            ctx.Process(target=_claim_all, args=(make_store, batch_ids, barrier, out))
            for _ in range(self.claimers)
        ]
        for w in workers:
            w.start()
        try:
            results = [out.get(timeout=120) for _ in workers]
        finally:
            for w in workers:
                w.join(60)
        assert all(w.exitcode == 0 for w in workers)
        claimed = [b for _, got in results for b in got]
        assert sorted(claimed) == sorted(batch_ids), "a batch claimed twice or never"
        assert {store.batch(b).state for b in batch_ids} == {BatchState.RUNNING}

    # -- entries and history --------------------------------------------------------------------

    def test_history_for_every_change(self, store):
        batch_id = batched(store, ["m1"])
        store.claim_batch(batch_id)
        store.complete_batch(
            batch_id,
            [
                entry("e1", "Alice has a dog", ["m1"]),
                entry("e2", "Alice has a cat", ["m1"]),
                entry("e3", "old", ["m1"]),
            ],
        )
        before = store.max_revision()
        updated = store.update_entry_text("e1", "Alice has two dogs", "corrected")
        assert updated.memory == "Alice has two dogs" and store.max_revision() > before
        store.retire_entry("e2", action="delete", reason="user asked")
        store.retire_entry("e3", action="supersede", reason="newer fact", replaced_by="e1")
        actions = [(h["entry_id"], h["action"]) for h in store.history()]
        assert actions == [
            ("e1", "add"),
            ("e2", "add"),
            ("e3", "add"),
            ("e1", "update"),
            ("e2", "delete"),
            ("e3", "supersede"),
        ]
        (update,) = [h for h in store.history("e1") if h["action"] == "update"]
        assert (update["old_memory"], update["new_memory"], update["reason"]) == (
            "Alice has a dog",
            "Alice has two dogs",
            "corrected",
        )
        (supersede,) = store.history("e3")[1:]
        assert supersede["replaced_by"] == "e1" and supersede["old_memory"] == "old"
        assert [e.id for e in store.entries()] == ["e1"]
        assert {e.id: e.status for e in store.entries(status=None)} == {
            "e1": "active",
            "e2": "deleted",
            "e3": "superseded",
        }
        assert store.count_entries() == 1 and store.count_entries(status=None) == 3
        assert [e.id for e in store.entries(changed_since=before)] == ["e1"]
        with pytest.raises(Exception):  # noqa: B017 - any error, as long as nothing changes
            store.update_entry_text("no-such-entry", "x", "y")

    def test_indexed_flags(self, store):
        batch_id = batched(store, ["m1"])
        store.claim_batch(batch_id)
        store.complete_batch(batch_id, [entry("e1", "one", ["m1"]), entry("e2", "two", ["m1"])])
        assert {e.id for e in store.entries(unindexed_only=True)} == {"e1", "e2"}
        store.mark_indexed(["e1"])
        assert [e.id for e in store.entries(unindexed_only=True)] == ["e2"]
        store.update_entry_text("e1", "one, edited", "edit")
        assert {e.id for e in store.entries(unindexed_only=True)} == {"e1", "e2"}
        assert [e.id for e in store.entries(["e2", "nope"])] == ["e2"]
        assert store.get_entry("e2").memory == "two" and store.get_entry("nope") is None

    def test_entry_facets(self, store):
        require(store, EntryFacets, "the store does not offer entry_facets")
        batch_id = batched(store, ["m1", "m2"])
        store.claim_batch(batch_id)
        named = entry("e1", "one", ["m1"])
        unnamed = attrs.evolve(
            entry("e2", "two", ["m2"]), speaker_name=None, speaker_id="speaker_b", topic_id=None
        )
        store.complete_batch(batch_id, [named, unnamed, entry("e3", "three", ["m2"])])
        store.retire_entry("e3", action="delete", reason="conformance")
        assert store.entry_facets(["e1", "e2", "e3", "nope"]) == {
            "e1": (1, "Alice"),
            "e2": (None, "speaker_b"),
        }
        assert store.entry_facets([]) == {}

    def require_restore(self, store) -> None:
        require(store, EntryRestore, "the store does not offer restore_entries")

    def test_restore_entries_keeps_what_the_file_holds(self, store):
        self.require_restore(store)
        batch_id = batched(store, ["m1"])
        store.claim_batch(batch_id)
        store.complete_batch(batch_id, [entry("e1", "kept as stored", ["m1"])])
        store.mark_indexed(["e1"])
        before = store.max_revision()
        created = T0 - dt.timedelta(days=30)
        active = attrs.evolve(
            entry("r1", "Bob keeps bees", ["gone-1", "gone-2"], scope=BOB),
            speaker_name=None,
            speaker_id="bob-id",
            topic_id=None,
            category="fact",
            entities=("Bob", "bees"),
            topic_summary="hobbies",
            original_memory="bob has bees",
            created_at=created,
            updated_at=created + dt.timedelta(days=1),
            metadata={"origin": "export", "n": [1, 2]},
        )
        superseded = attrs.evolve(
            entry("r2", "Alice lives in Lyon", ["gone-3"]),
            status="superseded",
            created_at=created,
            updated_at=created + dt.timedelta(days=2),
        )
        deleted = attrs.evolve(
            entry("r3", "Alice hates tea", [], scope=ALICE_BOT),
            status="deleted",
            created_at=created + dt.timedelta(hours=1),
            updated_at=created + dt.timedelta(days=3),
        )
        given = [
            entry("e1", "from the file", ["m1"]),  # stored already: skipped
            active,
            superseded,
            deleted,
        ]
        restored = store.restore_entries(given)
        assert restored == [active, superseded, deleted]
        for e in (active, superseded, deleted):
            assert store.get_entry(e.id) == e, f"{e.id} was not restored as given"
        assert store.get_entry("e1").memory == "kept as stored"
        assert [e.id for e in store.entries()] == ["e1", "r1"]
        assert [e.id for e in store.entries(scope=BOB)] == ["r1"]
        assert {e.id: e.status for e in store.entries(status=None)} == {
            "e1": "active",
            "r1": "active",
            "r2": "superseded",
            "r3": "deleted",
        }
        assert store.count_entries(status=None) == 4
        assert [e.id for e in store.entries(unindexed_only=True)] == ["r1"]
        assert store.max_revision() > before
        assert [e.id for e in store.entries(changed_since=before)] == ["r1"]
        assert store.history("r1") == [] and store.history("r2") == []
        assert store.restore_entries(given) == []
        assert store.restore_entries([]) == []
        twice = entry("r4", "given twice", [])
        assert store.restore_entries([twice, attrs.evolve(twice, memory="again")]) == [twice]
        assert store.get_entry("r4").memory == "given twice"
        assert store.count_entries(status=None) == 5
        # an id given twice among others: its first entry, in its first place
        r5, r6 = entry("r5", "fifth", []), entry("r6", "sixth", [])
        assert store.restore_entries([r5, r6, attrs.evolve(r5, memory="later")]) == [r5, r6]
        assert [e.id for e in store.entries()][-2:] == ["r5", "r6"]

    def test_restore_entries_without_time_stamps_get_the_stores(self, store):
        self.require_restore(store)
        started = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
        (restored,) = store.restore_entries([entry("r1", "no times", [])])
        assert restored.id == "r1"
        stored = store.get_entry("r1")
        assert stored.created_at is not None and stored.updated_at is not None
        assert stored.created_at >= started and stored.updated_at >= started

    def test_restore_history_keeps_its_time_stamps(self, store):
        self.require_restore(store)
        batch_id = batched(store, ["m1"])
        store.claim_batch(batch_id)
        store.complete_batch(batch_id, [entry("e1", "Alice has a dog", ["m1"])])
        created = T0 - dt.timedelta(days=30)
        store.restore_entries(
            [attrs.evolve(entry("r2", "Alice lives in Lyon", []), status="superseded")]
        )
        rows = [
            {
                "entry_id": "r2",
                "action": "add",
                "old_memory": None,
                "new_memory": "Alice lives in Lyon",
                "reason": "extracted",
                "replaced_by": None,
                "at": created.isoformat(),
            },
            {
                "entry_id": "r2",
                "action": "supersede",
                "old_memory": "Alice lives in Lyon",
                "new_memory": None,
                "reason": "newer fact",
                "replaced_by": "e1",
                "at": (created + dt.timedelta(days=2)).isoformat(),
            },
            {
                "entry_id": "e1",
                "action": "update",
                "old_memory": "Alice has a cat",
                "new_memory": "Alice has a dog",
                "reason": "",
                "replaced_by": None,
                "at": None,
            },
        ]
        started = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
        assert store.restore_history(rows) == 3
        keys = ("entry_id", "action", "old_memory", "new_memory", "reason", "replaced_by")
        got = store.history("r2")
        assert [tuple(h[k] for k in keys) for h in got] == [
            tuple(r[k] for k in keys) for r in rows[:2]
        ]
        assert [dt.datetime.fromisoformat(h["at"]) for h in got] == [
            created,
            created + dt.timedelta(days=2),
        ]
        e1 = store.history("e1")
        assert [(h["action"], h["old_memory"]) for h in e1] == [
            ("add", None),
            ("update", "Alice has a cat"),
        ], "a restored row comes after the rows already there"
        assert dt.datetime.fromisoformat(e1[1]["at"]) >= started
        assert [(h["entry_id"], h["action"]) for h in store.history()] == [
            ("e1", "add"),
            ("r2", "add"),
            ("r2", "supersede"),
            ("e1", "update"),
        ]
        assert store.restore_history([]) == 0
        assert len(store.history()) == 4

    def test_entry_positions(self, store):
        require(store, EntryPositions, "the store does not offer entry_positions")
        first = batched(store, ["m1", "m2"])
        store.claim_batch(first)
        store.complete_batch(first, [entry("e1", "one", ["m1"]), entry("e2", "two", ["m2"])])
        second = batched(store, ["m3"])
        store.claim_batch(second)
        store.complete_batch(second, [entry("e3", "three", ["m3"]), entry("e4", "four", ["m3"])])
        store.retire_entry("e4", action="delete", reason="conformance")
        found = store.entry_positions(["e3", "e1", "e2", "e4", "nope"])
        assert set(found) == {"e1", "e2", "e3", "e4"}, "every entry asked for that exists"
        assert all(isinstance(p, int) for p in found.values())
        assert found["e2"] - found["e1"] == 1, "stored one after the other in one batch"
        assert found["e4"] - found["e3"] == 1, "a retired entry keeps its place"
        assert found["e3"] > found["e2"], "a later batch stands later"
        assert store.entry_positions([]) == {}

    def test_positions_after_an_erase_follow_the_entries_stored_again(self, store):
        """Entries erased and restored in another order stand in the new order, whatever
        was read of them before (a store may note positions as it reads facets)."""
        require(store, EntryPositions, "the store does not offer entry_positions")
        self.require_erase(store)
        self.require_restore(store)
        one, two = entry("e1", "one", []), entry("e2", "two", [])
        store.restore_entries([one, two])
        if isinstance(store, EntryFacets):
            store.entry_facets(["e1", "e2"])
        before = store.entry_positions(["e1", "e2"])
        assert before["e1"] < before["e2"]
        store.erase_scope(user_id=ALICE.user_id)
        assert store.entry_positions(["e1", "e2"]) == {}, "erased entries have no place"
        store.restore_entries([two, one])
        after = store.entry_positions(["e1", "e2"])
        assert after["e2"] < after["e1"], "the order they were stored in again"

    # -- the optional erase (``ScopeErase``) ------------------------------------------------

    def require_erase(self, store) -> None:
        require(store, ScopeErase, "the store does not offer erase_scope")

    @staticmethod
    def _tenant(store: Any, scope: Scope, tag: str) -> list[str]:
        """Two extracted messages and a pending one, two entries (one edited, one retired),
        a queued update: every kind of row an erase must reach. Returns the entry ids."""
        done = batched(store, [f"{tag}-m1", f"{tag}-m2"], scope)
        store.claim_batch(done)
        store.complete_batch(
            done,
            [
                entry(f"{tag}-e1", f"{tag} one", [f"{tag}-m1"], scope),
                entry(f"{tag}-e2", f"{tag} two", [f"{tag}-m2"], scope),
            ],
        )
        store.update_entry_text(f"{tag}-e1", f"{tag} one, edited", "edit")
        store.retire_entry(f"{tag}-e2", action="delete", reason="conformance")
        batched(store, [f"{tag}-m3"], scope)
        return [f"{tag}-e1", f"{tag}-e2"]

    def test_erase_scope_removes_every_trace_of_the_matching_scopes(self, store):
        self.require_erase(store)
        alice = self._tenant(store, ALICE, "a")
        alice_bot = self._tenant(store, ALICE_BOT, "ab")
        bob = self._tenant(store, BOB, "b")
        store.save_update_queue({"a-e1": [("ab-e1", 0.9)], "b-e1": [("b-e2", 0.8)]})
        bob_history = store.history("b-e1") + store.history("b-e2")
        alice_history = sum(len(store.history(eid)) for eid in alice + alice_bot)
        assert alice_history == 8  # per entry: add, then update or delete
        every_state = list(BatchState)

        removed = store.erase_scope(user_id="alice")
        assert sorted(removed["entry_ids"]) == sorted(alice + alice_bot)
        assert removed["entries"] == 4
        assert removed["messages"] == 6
        assert removed["batches"] == 4
        assert removed["history"] == alice_history

        for scope in (ALICE, ALICE_BOT):
            assert store.entries(status=None, scope=scope) == []
            assert store.journal(scope=scope) == []
            assert store.batches(every_state, scope=scope) == []
        for eid in alice + alice_bot:
            assert store.get_entry(eid) is None
            assert store.history(eid) == []
        assert store.messages_by_id(["a-m1", "ab-m3"]) == {}
        assert store.update_queue() == {"b-e1": [("b-e2", 0.8)]}

        assert sorted(e.id for e in store.entries(status=None, scope=BOB)) == bob
        assert [r.message.id for r in store.journal(scope=BOB)] == ["b-m1", "b-m2", "b-m3"]
        assert len(store.batches(every_state, scope=BOB)) == 2
        assert store.history("b-e1") + store.history("b-e2") == bob_history
        assert store.get_entry("b-e1").memory == "b one, edited"

    def test_erase_scope_matches_only_the_fields_given(self, store):
        self.require_erase(store)
        alice = self._tenant(store, ALICE, "a")
        alice_bot = self._tenant(store, ALICE_BOT, "ab")
        removed = store.erase_scope(agent_id="bot")
        assert sorted(removed["entry_ids"]) == alice_bot
        assert sorted(e.id for e in store.entries(status=None)) == alice, (
            "a scope without the agent was erased by agent_id='bot'"
        )
        nothing = store.erase_scope(user_id="nobody")
        assert list(nothing["entry_ids"]) == []
        assert (nothing["entries"], nothing["messages"]) == (0, 0)
        assert (nothing["history"], nothing["batches"]) == (0, 0)
        assert len(store.journal(scope=ALICE)) == 3

    def test_erase_scope_naming_no_field_is_refused_and_removes_nothing(self, store):
        """The core always names a field; a call naming none (every scope) is a mistake the
        store refuses as a ``ValueError`` before removing anything."""
        self.require_erase(store)
        alice = self._tenant(store, ALICE, "a")
        with pytest.raises(ValueError):
            store.erase_scope()
        with pytest.raises(ValueError):
            store.erase_scope(user_id=None, agent_id=None, run_id=None)
        assert sorted(e.id for e in store.entries(status=None)) == alice

    def test_usage_is_summed_per_operation(self, store):
        store.add_usage("add_memory", Usage(llm_calls=1, prompt_tokens=100, completion_tokens=10))
        store.add_usage(
            "add_memory", Usage(llm_calls=2, prompt_tokens=50, embedder_calls=3, embedded_texts=7)
        )
        store.add_usage("search", Usage(embedder_calls=1, embedded_texts=1))
        store.add_usage("nothing", Usage())
        usage = store.usage()
        assert usage["add_memory"] == Usage(
            llm_calls=3, prompt_tokens=150, completion_tokens=10, embedder_calls=3, embedded_texts=7
        )
        assert usage["search"] == Usage(embedder_calls=1, embedded_texts=1)
        assert "nothing" not in usage

    def test_update_queue(self, store):
        store.save_update_queue({"e1": [("e2", 0.9)], "e3": []})
        store.save_update_queue({"e1": [("e4", 0.8), ("e2", 0.7)]})
        assert store.update_queue() == {"e1": [("e4", 0.8), ("e2", 0.7)], "e3": []}
        store.clear_update_queue()
        assert store.update_queue() == {}

    def test_stats(self, store):
        batch_id = batched(store, ["m1", "m2"])
        store.claim_batch(batch_id)
        store.complete_batch(batch_id, [entry("e1", "one", ["m1"])])
        stats = store.stats()
        assert stats["entries"] == {"active": 1}
        assert stats["messages"] == {"extracted": 2}
        assert stats["batches"] == {"done": 1}

    # -- durability -----------------------------------------------------------------------------

    def test_reopen_keeps_everything(self, store, new_store):
        batch_id = batched(store, ["m1", "m2"])
        store.claim_batch(batch_id)
        store.complete_batch(batch_id, [entry("e1", "Alice has a dog", ["m1", "m2"])])
        store.update_entry_text("e1", "Alice has two dogs", "edit")
        store.add_usage("add_memory", Usage(llm_calls=1))
        pending = batched(store, ["m3"], BOB)
        store.close()
        again = new_store()
        assert [e.memory for e in again.entries()] == ["Alice has two dogs"]
        assert [h["action"] for h in again.history("e1")] == ["add", "update"]
        assert again.usage()["add_memory"].llm_calls == 1
        assert [b.id for b in again.batches()] == [pending]
        assert again.add_messages([message("m1")]) == []  # still journaled

    def test_reopen_after_kill_9_in_the_middle_of_complete_batch(
        self, store, make_store, new_store
    ):
        batch_id = batched(store, ["m1", "m2"])
        ctx = _spawn()
        child = ctx.Process(target=_claim_then_die_mid_complete, args=(make_store, batch_id))
        child.start()
        child.join(120)
        assert child.exitcode == -signal.SIGKILL
        again = new_store()
        assert [r.message.id for r in again.journal(scope=ALICE)] == ["m1", "m2", "late-1"]
        assert again.count_entries(status=None) == 0 and again.history() == []
        assert {r.state for r in again.batch_messages(batch_id)} == {"batched"}
        # The dead process's claim is given back (at once, or as soon as the store sees that
        # its claimant is gone).
        deadline = time.monotonic() + 30
        claimed = again.claim_batch(batch_id)
        while claimed is None and time.monotonic() < deadline:
            time.sleep(0.2)
            claimed = again.claim_batch(batch_id)
        assert claimed is not None, "the batch of a killed process is never claimable again"
        facts = [entry(f"{batch_id}-e{i}", f"fact {i}", ["m1"]) for i in range(3)]
        assert len(again.complete_batch(batch_id, facts)) == 3
