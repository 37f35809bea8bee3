"""The graph stage's seam: how the indexer and the retriever chain use a graph memory.

Building and querying the graph are :mod:`lightmem_core.graph`'s (entities and relations from
entries, the no-LLM fallback, entity dedup, the walk from the entities a query names); this
module keeps one :class:`~lightmem_core.graph.GraphBuilder` per configured graph backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lightmem_hookspecs import GraphHit, MemoryEntry, SearchFilter

from ..graph import GraphBuilder, GraphSettings, graph_search


class GraphStage:
    """Indexes entries into, and searches, the configured graph memories."""

    def __init__(self, embedder: Any = None, settings: GraphSettings | None = None) -> None:
        self.embedder = embedder
        self.settings = settings or GraphSettings()
        self._builders: dict[int, GraphBuilder] = {}
        self._totals: dict[int, int] = {}

    def _builder(self, graph: Any) -> GraphBuilder:
        builder = self._builders.get(id(graph))
        if builder is None:
            builder = GraphBuilder(graph, embedder=self.embedder, settings=self.settings)
            self._builders[id(graph)] = builder
        return builder

    def index(self, graph: Any, entries: Sequence[MemoryEntry]) -> int:
        """Replace what ``graph`` holds for ``entries`` by their relations."""
        self._totals.pop(id(graph), None)
        return self._builder(graph).index(entries)

    def show(
        self, graph: Any, entity: str, *, depth: int, filter: SearchFilter | None = None
    ) -> list[str]:
        """Lines describing the entity named ``entity`` and its relations within ``depth``
        hops, with their validity and source entries."""
        from ..graph import show

        return show(graph, entity, depth=depth, filter=filter)

    def export(self, graph: Any, format: str, *, filter: SearchFilter | None = None) -> str:
        """Every entity and relation of ``graph`` (closed ones included) as ``json`` or
        ``graphml`` text."""
        import json

        from ..graph import export_graphml, export_json

        if format == "graphml":
            return export_graphml(graph, filter=filter)
        return json.dumps(export_json(graph, filter=filter), indent=2, ensure_ascii=False)

    def search(
        self,
        graph: Any,
        query: str,
        *,
        limit: int,
        filter: SearchFilter | None = None,
        candidates: Sequence[str] = (),
    ) -> list[GraphHit]:
        """Entries linked to the entities the query names and to those of the best
        ``candidates`` (the other retrievers' hits, best first), best first, with their paths."""
        total = self._totals.get(id(graph))
        if total is None:
            # Entries in the graph, for weighing entities by how many entries they touch;
            # counted again after the next indexing (a deletion alone leaves it a little high).
            total = self._totals[id(graph)] = len(graph.entry_ids())
        return graph_search(
            graph,
            query,
            limit=limit,
            filter=filter,
            settings=self.settings,
            candidates=candidates,
            total=total,
        )
