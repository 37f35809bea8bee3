"""lightmem export / import: round trips, idempotence, re-embedding only when needed, a changed
embedder refused at open, damaged files refused with their line number."""

from __future__ import annotations

import json
from typing import Any

import pytest
from lightmem_hookspecs import EntryRestore, TextBulkLoad, VectorBulkLoad, hookimpl

from lightmem_core import LightMemory
from lightmem_core.errors import InputError
from lightmem_core.store import SQLiteRecordStore
from lightmem_core.testing.reference import ExactVectorIndex, KeywordIndex, reference_config
from lightmem_core.transfer import EmbedderChangedError, export_memory, import_memory

FACTS = {
    "alice": [
        "Alice adopted a grey cat named Miso",
        "Alice works as a nurse at the city hospital",
        "Alice is learning to play the cello",
    ],
    "bob": ["Bob is training for the Lisbon marathon", "Bob grows tomatoes on his balcony"],
}
QUESTIONS = [
    ("alice", "what is the cat called?"),
    ("alice", "where does Alice work?"),
    ("bob", "which marathon?"),
    ("bob", "what grows on the balcony?"),
]


def _memory(path, host, **overrides):
    return LightMemory(reference_config(path, **overrides), host=host)


def _fill(mem):
    for user, facts in FACTS.items():
        for i, text in enumerate(facts):
            mem.add_memory(
                [{"role": "user", "content": text, "time_stamp": f"2024-03-0{i + 1}T10:00"}],
                force_segment=True,
                force_extract=True,
                user_id=user,
            )
    cello = next(e for e in mem.get_all(user_id="alice") if "cello" in e.memory)
    mem.update(cello.id, "Alice plays the cello in an orchestra", reason="user correction")
    tomato = next(e for e in mem.get_all(user_id="bob") if "tomatoes" in e.memory)
    mem.delete(tomato.id, reason="user asked")
    # Journaled, not extracted yet.
    mem.add_memory([{"role": "user", "content": "Alice is flying to Oslo"}], user_id="alice")


def _answers(mem):
    return [
        [(h.entry.memory, h.entry.time_stamp) for h in mem.search(q, limit=3, user_id=u)]
        for u, q in QUESTIONS
    ]


@pytest.fixture
def exported(tmp_path, ref_host):
    with _memory(tmp_path / "a", ref_host) as mem:
        _fill(mem)
        report = export_memory(mem, tmp_path / "memory.jsonl")
        answers = _answers(mem)
        history = len(mem.history())
        journal = [r.message.id for r in mem.store.journal(state="sensory")]
    assert report.entries == 5 and report.vectors
    return tmp_path / "memory.jsonl", answers, history, journal


def test_round_trip_gives_the_same_search_results(tmp_path, ref_host, exported):
    path, answers, history, journal = exported
    with _memory(tmp_path / "b", ref_host) as mem:
        report = import_memory(mem, path)
        assert (report.entries_added, report.history_added) == (5, history)
        assert report.messages_added == len(journal) == 1
        assert not report.reembedded  # same embedder: the file's vectors were written
        assert _answers(mem) == answers
        statuses = sorted(e.status for e in mem.get_all(include_inactive=True, user_id="bob"))
        assert statuses == ["active", "deleted"]
        cello = next(e for e in mem.get_all(user_id="alice") if "cello" in e.memory)
        assert [h["action"] for h in mem.history(cello.id)] == ["add", "update"]
        assert cello.source_message_ids and cello.time_stamp is not None
        assert [r.message.id for r in mem.store.journal(state="sensory")] == journal
        again = import_memory(mem, path)  # idempotent
        assert (again.entries_added, again.history_added, again.messages_added) == (0, 0, 0)
        assert len(mem.history()) == history
        assert _answers(mem) == answers


def test_another_embedder_re_embeds(tmp_path, ref_host, exported):
    path = exported[0]
    other = {"model_name": "hash", "configs": {"dims": 32}}
    with _memory(tmp_path / "c", ref_host, text_embedder=other) as mem:
        report = import_memory(mem, path)
        assert report.reembedded and report.vectors and report.entries_added == 5
        hits = mem.search("grey cat named Miso", limit=3, user_id="alice")
        assert any("Miso" in h.entry.memory for h in hits)
        assert mem.vector_index.count() == 4


def test_a_memory_without_a_vector_store_says_nothing_was_embedded(tmp_path, ref_host, exported):
    path = exported[0]
    lexical = {"text_embedder": None, "embedding_retriever": None, "retrieve_strategy": "context"}
    with _memory(tmp_path / "d", ref_host, **lexical) as mem:
        report = import_memory(mem, path)
        assert report.entries_added == 5
        assert not report.reembedded and not report.vectors  # no embedder: nothing embedded
        hits = mem.search("grey cat named Miso", limit=3, user_id="alice")
        assert any("Miso" in h.entry.memory for h in hits)  # found by the lexical index
    with _memory(tmp_path / "e", ref_host) as mem:
        report = import_memory(mem, path)
        assert report.vectors and not report.reembedded  # the file's vectors, as exported
        assert import_memory(mem, path).vectors is False  # nothing new: nothing written


def test_a_changed_embedder_is_refused_until_reindex(tmp_path, ref_host):
    with _memory(tmp_path / "m", ref_host) as mem:
        _fill(mem)
    other = {"model_name": "hash", "configs": {"dims": 32}}
    with _memory(tmp_path / "m", ref_host, text_embedder=other) as mem:
        with pytest.raises(EmbedderChangedError, match="lightmem reindex") as info:
            mem.search("cat", user_id="alice")
        assert "64 dimensions" in str(info.value) and "32 dimensions" in str(info.value)
        assert mem.reindex() == 4
        hits = mem.search("grey cat named Miso", limit=3, user_id="alice")
        assert any("Miso" in h.entry.memory for h in hits)


def _lines(path):
    return path.read_text().splitlines()


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (lambda ls: ls[:-1], r"memory\.jsonl:\d+: the file ends without its end line"),
        (lambda ls: ls[:-3] + ls[-1:], "lines are missing"),
        (
            lambda ls: [json.dumps({**json.loads(ls[0]), "version": 2}), *ls[1:]],
            r"memory\.jsonl:1: export format version 2, newer",
        ),
        (lambda ls: [ls[0], ls[1], "{not json", *ls[2:]], r"memory\.jsonl:3: not JSON"),
        (
            lambda ls: [ls[0], ls[1].replace('"user_id":"alice"', '"user_id":7'), *ls[2:]],
            r"memory\.jsonl:2: entry\.scope\.user_id: expected a non-empty string",
        ),
    ],
    ids=["truncated", "lines-missing", "newer-format", "bad-json", "wrong-scope-type"],
)
def test_a_damaged_file_is_refused_with_its_line_and_nothing_is_imported(
    tmp_path, ref_host, exported, damage, expected
):
    path = exported[0]
    _write(path, damage(_lines(path)))
    with _memory(tmp_path / "d", ref_host) as mem:
        with pytest.raises(InputError, match=expected):
            import_memory(mem, path)
        assert mem.store.count_entries(status=None) == 0 and mem.history() == []
        assert mem.store.journal() == []


def test_skip_bad_lines_imports_the_rest_and_names_the_bad(tmp_path, ref_host, exported):
    path = exported[0]
    lines = _lines(path)
    _write(path, [lines[0], "{not json", *lines[2:]])  # the first entry is lost
    with _memory(tmp_path / "e", ref_host) as mem:
        report = import_memory(mem, path, skip_bad_lines=True)
        assert report.entries_added == 4
        assert [n for n, _ in report.skipped_lines] == [2]


# -- the optional capabilities: used where a backend offers them, not needed -----------------


class NoRestoreStore(SQLiteRecordStore):
    """The SQLite store without the optional ``EntryRestore`` (a method set to ``None`` is
    not offered, for ``isinstance`` on a runtime-checkable Protocol)."""

    restore_entries = None
    restore_history = None


class CountingBulkVectors(ExactVectorIndex):
    """The reference vector index with ``VectorBulkLoad``, counting how it was written."""

    def __init__(self) -> None:
        super().__init__(None)
        self.calls: list[tuple[str, int]] = []

    def upsert(self, records):
        self.calls.append(("upsert", len(records)))
        super().upsert(records)

    def bulk_upsert(self, chunks):
        written = 0
        for chunk in chunks:
            super().upsert(chunk)
            written += len(chunk)
        self.calls.append(("bulk_upsert", written))
        return written


class CountingBulkTexts(KeywordIndex):
    """The reference keyword index with ``TextBulkLoad``, counting how it was written."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, int]] = []

    def index(self, records):
        self.calls.append(("index", len(records)))
        super().index(records)

    def bulk_index(self, chunks):
        written = 0
        for chunk in chunks:
            super().index(chunk)
            written += len(chunk)
        self.calls.append(("bulk_index", written))
        return written


class OptionalBackends:
    def __init__(self) -> None:
        self.built: list[Any] = []

    def _keep(self, backend):
        self.built.append(backend)
        return backend

    @hookimpl
    def lightmem_register_backends(self, registrar):
        registrar.record_store(
            "no-restore", lambda o, c: NoRestoreStore(f"{c.memory_dir}/history.db")
        )
        registrar.embedding_retriever("bulk-exact", lambda o, c: self._keep(CountingBulkVectors()))
        registrar.context_retriever("bulk-keyword", lambda o, c: self._keep(CountingBulkTexts()))


def test_an_import_loads_the_indexes_through_their_bulk_loads(tmp_path, ref_host, exported):
    path, answers, *_ = exported
    plugin = OptionalBackends()
    ref_host.register(plugin, "optional-backends")
    bulk = {
        "embedding_retriever": {"model_name": "bulk-exact"},
        "context_retriever": {"model_name": "bulk-keyword"},
    }
    with _memory(tmp_path / "bulk", ref_host, **bulk) as mem:
        report = import_memory(mem, path)
        assert report.vectors and not report.reembedded
        vectors, texts = plugin.built
        assert isinstance(vectors, VectorBulkLoad) and isinstance(texts, TextBulkLoad)
        assert vectors.calls == [("bulk_upsert", 4)]  # the 4 active entries, in one pass
        assert texts.calls == [("bulk_index", 4)]
        assert _answers(mem) == answers
        assert mem.store.entries(unindexed_only=True) == []


def test_a_store_without_restore_imports_through_batches(tmp_path, ref_host, exported):
    path, answers, history, _ = exported
    ref_host.register(OptionalBackends(), "optional-backends")
    with _memory(tmp_path / "plain", ref_host, record_store={"model_name": "no-restore"}) as mem:
        assert not isinstance(mem.store, EntryRestore)
        report = import_memory(mem, path)
        assert report.entries_added == 5 and report.history_added == 0
        assert _answers(mem) == answers
        statuses = sorted(e.status for e in mem.get_all(include_inactive=True, user_id="bob"))
        assert statuses == ["active", "deleted"]
        cello = next(e for e in mem.get_all(user_id="alice") if "cello" in e.memory)
        assert [h["action"] for h in mem.history(cello.id)] == ["add"]  # the file's is not kept
    with _memory(tmp_path / "restored", ref_host) as mem:
        assert isinstance(mem.store, EntryRestore)
        assert import_memory(mem, path).history_added == history
        cello = next(e for e in mem.get_all(user_id="alice") if "cello" in e.memory)
        assert [h["action"] for h in mem.history(cello.id)] == ["add", "update"]


def test_an_entry_the_file_repeats_is_imported_and_indexed_once(tmp_path, ref_host, exported):
    path, answers, *_ = exported
    lines = _lines(path)
    first = next(i for i, line in enumerate(lines) if json.loads(line).get("type") == "entry")
    repeated = json.loads(lines[first])
    assert repeated["entry"]["status"] == "active"
    again = {**repeated, "entry": {**repeated["entry"], "memory": "a later copy"}}
    end = json.loads(lines[-1])
    _write(
        path,
        [
            *lines[: first + 1],
            json.dumps(again),
            *lines[first + 1 : -1],
            json.dumps({**end, "entries": end["entries"] + 1}),
        ],
    )
    plugin = OptionalBackends()
    ref_host.register(plugin, "optional-backends")
    bulk = {
        "embedding_retriever": {"model_name": "bulk-exact"},
        "context_retriever": {"model_name": "bulk-keyword"},
    }
    with _memory(tmp_path / "repeated", ref_host, **bulk) as mem:
        report = import_memory(mem, path)
        assert report.entries_added == 5
        vectors, texts = plugin.built
        assert vectors.calls == [("bulk_upsert", 4)] and texts.calls == [("bulk_index", 4)]
        assert mem.get(repeated["entry"]["id"]).memory == repeated["entry"]["memory"]
        assert texts.search("later copy", limit=5) == [], "the index holds another text"
        assert _answers(mem) == answers
