"""Conformance suite for ``graph_memory`` backends.

Subclass :class:`GraphMemoryConformance` and provide a ``backend`` fixture returning a fresh,
empty :class:`~lightmem_hookspecs.GraphMemory`. The suite adds entries that share entities and
checks search returns only ids it was given, honours ``limit`` and scope filters, and forgets
deleted entries.
"""

from __future__ import annotations

import pytest
from lightmem_hookspecs import GraphMemory, MemoryEntry, Scope, SearchFilter

ENTRIES = [
    MemoryEntry(
        id="a",
        memory="Alice adopted a dog named Rex.",
        entities=("Alice", "Rex"),
        scope=Scope(user_id="u1"),
    ),
    MemoryEntry(
        id="b",
        memory="Rex likes swimming in the lake.",
        entities=("Rex", "lake"),
        scope=Scope(user_id="u1"),
    ),
    MemoryEntry(
        id="c",
        memory="Bob works at the bakery.",
        entities=("Bob", "bakery"),
        scope=Scope(user_id="u2"),
    ),
]


class GraphMemoryConformance:
    @pytest.fixture
    def backend(self):  # pragma: no cover - the subclass provides it
        raise NotImplementedError("provide a `backend` fixture returning an empty graph memory")

    def test_implements_the_protocol(self, backend):
        assert isinstance(backend, GraphMemory)

    def test_search_returns_known_ids_within_limit(self, backend):
        backend.add(ENTRIES)
        out = backend.search("What does Rex like?", limit=2)
        assert len(out) <= 2
        assert {i for i, _ in out} <= {"a", "b", "c"}
        assert out and out[0][0] in {"a", "b"}

    def test_scope_filter(self, backend):
        backend.add(ENTRIES)
        out = backend.search("Rex bakery Bob Alice", limit=10, filter=SearchFilter(user_id="u2"))
        assert {i for i, _ in out} <= {"c"}

    def test_delete(self, backend):
        backend.add(ENTRIES)
        backend.delete(["a", "b"])
        out = backend.search("Rex", limit=10)
        assert {i for i, _ in out} <= {"c"}
