"""The built-in SQLite record store against the record_store conformance suite."""

from __future__ import annotations

import functools

import pytest

from lightmem_core.store import SQLiteRecordStore
from lightmem_core.testing.conformance.record_store import RecordStoreConformance


class TestSQLiteRecordStore(RecordStoreConformance):
    @pytest.fixture
    def make_store(self, tmp_path):
        return functools.partial(SQLiteRecordStore, tmp_path / "history.db")
