"""The built-in SQLite record store against the record_store conformance suite."""

from __future__ import annotations

import datetime as dt
import functools

import attrs
import pytest
from lightmem_hookspecs import EntryRestore, ScopeErase

from lightmem_core.store import SQLiteRecordStore
from lightmem_core.testing.conformance.record_store import RecordStoreConformance


class TestSQLiteRecordStore(RecordStoreConformance):
    @pytest.fixture
    def make_store(self, tmp_path):
        return functools.partial(SQLiteRecordStore, tmp_path / "history.db")


# -- the optional EntryRestore: the suite fails a store that does not keep what it promises --


class StampsRestoredEntries(SQLiteRecordStore):
    """Restores entries with its own time stamps, as an extraction would."""

    def restore_entries(self, entries):
        now = dt.datetime.now(dt.UTC)
        return super().restore_entries(
            [attrs.evolve(e, created_at=now, updated_at=now) for e in entries]
        )


class OverwritesKnownEntries(SQLiteRecordStore):
    """Restores an id it already has by replacing the stored entry."""

    def restore_entries(self, entries):
        with self.transaction() as db:
            for e in entries:
                db.execute("DELETE FROM entries WHERE id=?", (e.id,))
        return super().restore_entries(entries)


class RestoresHistoryAsOfNow(SQLiteRecordStore):
    """Appends history rows with the time of the import instead of their own."""

    def restore_history(self, rows):
        return super().restore_history([{**r, "at": None} for r in rows])


@pytest.mark.parametrize(
    ("broken", "check"),
    [
        (StampsRestoredEntries, "test_restore_entries_keeps_what_the_file_holds"),
        (OverwritesKnownEntries, "test_restore_entries_keeps_what_the_file_holds"),
        (RestoresHistoryAsOfNow, "test_restore_history_keeps_its_time_stamps"),
    ],
)
def test_the_suite_rejects_a_restore_that_loses_what_the_file_holds(tmp_path, broken, check):
    suite = RecordStoreConformance()
    store = broken(tmp_path / "broken.db")
    try:
        with pytest.raises(AssertionError):
            getattr(suite, check)(store)
    finally:
        store.close()
    clean = SQLiteRecordStore(tmp_path / "clean.db")
    try:
        getattr(suite, check)(clean)
    finally:
        clean.close()


def test_a_store_without_restore_is_skipped_not_failed(tmp_path):
    class NoRestore:
        pass

    store = SQLiteRecordStore(tmp_path / "h.db")
    try:
        assert isinstance(store, EntryRestore)
    finally:
        store.close()
    assert not isinstance(NoRestore(), EntryRestore)
    with pytest.raises(pytest.skip.Exception):
        RecordStoreConformance().require_restore(NoRestore())


# -- the optional ScopeErase: the suite fails an erase that leaves a trace behind ----------


class KeepsTheHistory(SQLiteRecordStore):
    """Erases the scopes but puts the removed entries' history rows back."""

    def erase_scope(self, **fields):
        kept = self.history()
        removed = super().erase_scope(**fields)
        self.restore_history([r for r in kept if r["entry_id"] in set(removed["entry_ids"])])
        return removed


class KeepsTheJournal(SQLiteRecordStore):
    """Erases the scopes but journals the removed messages again."""

    def erase_scope(self, **fields):
        rows = self.journal()
        removed = super().erase_scope(**fields)
        self.add_messages([r.message for r in rows])
        return removed


@pytest.mark.parametrize("broken", [KeepsTheHistory, KeepsTheJournal])
def test_the_suite_rejects_an_erase_that_leaves_a_trace(tmp_path, broken):
    suite = RecordStoreConformance()
    check = suite.test_erase_scope_removes_every_trace_of_the_matching_scopes
    store = broken(tmp_path / "broken.db")
    try:
        with pytest.raises(AssertionError):
            check(store)
    finally:
        store.close()
    clean = SQLiteRecordStore(tmp_path / "clean.db")
    try:
        assert isinstance(clean, ScopeErase)
        check(clean)
    finally:
        clean.close()
    with pytest.raises(pytest.skip.Exception):
        suite.require_erase(object())
