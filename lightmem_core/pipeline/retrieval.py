"""The retrieval stage: prepare the query → the retriever chain → fusion → the reranker chain.

Each retriever's search, the query embedding and each reranker run as operations
(``search``, ``embed``, ``rerank``) inside the ``retrieve`` operation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import attrs
from lightmem_hookspecs import (
    EveryStrategy,
    QueryContext,
    SearchFilter,
    SearchHit,
    TopOnly,
    entry_payload,
)

from ..backends import Retriever
from ..errors import BackendError, InputError
from ..graph import describe_path
from ..plugins import normalize_name
from ..queries import in_scope
from .focus import (
    SPEAKER_SUFFIX,
    Facets,
    boost_exchanges,
    boost_segments,
    exchange_candidates,
    named_speaker,
    read_facets,
    read_positions,
)
from .fusion import Ranked, fuse, fuse_more
from .runtime import Runtime


def _every_strategy(backend: Any) -> bool:
    """Whether a retriever runs under every strategy (``EveryStrategy``)."""
    return isinstance(backend, EveryStrategy) and backend.every_strategy is True


def _top_only(reranker: Any) -> bool:
    """Whether a reranker needs the first ``limit`` hits only (``TopOnly``)."""
    return isinstance(reranker, TopOnly) and reranker.top_only is True


#: Which chain elements each search strategy queries.
STRATEGY_KINDS: dict[str, tuple[str, ...] | None] = {
    "embedding": ("embedding_retriever",),
    "context": ("context_retriever",),
    "hybrid": None,  # every element
}

#: The retriever kinds whose lists count twice for a speaker the query names.
SPEAKER_KINDS = ("embedding_retriever", "context_retriever")


def pool_size(limit: int, configured: int | None) -> int:
    """Hits each retriever returns and the rerankers receive."""
    return max(configured or max(limit * 5, 50), limit)


class Retrieval:
    """Answers queries from the configured retrieval chain."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def search(self, ctx: QueryContext, labels: Sequence[str] | None = None) -> list[SearchHit]:
        """Run ``ctx`` (after ``query_prepared`` hooks) and return at most ``ctx.limit`` hits;
        ``labels``: only these elements of the retrieval chain (default: the strategy's)."""
        rt = self.rt
        self._labels = None if labels is None else tuple(labels)
        rt.indexer.open()
        rt.indexer.flush()  # a search sees every committed entry
        rt.hooks.query_prepared(ctx)
        if ctx.strategy not in STRATEGY_KINDS:
            raise InputError(
                f"strategy: expected embedding, context or hybrid, got {ctx.strategy!r}"
            )
        hits = rt.run("retrieve", lambda: self._search(ctx), strategy=ctx.strategy)
        rt.hooks.results_ready(ctx, hits)
        return hits[: ctx.limit]

    def _retrievers(self, strategy: str) -> list[Retriever]:
        kinds = STRATEGY_KINDS[strategy]
        chain = self.rt.backends.retrievers()
        chosen = [
            r
            for r in chain  # a retriever may run under every strategy (the image retriever)
            if kinds is None or r.kind in kinds or _every_strategy(r.backend)
        ]
        labels = getattr(self, "_labels", None)
        if labels is not None:
            unknown = sorted(set(labels) - {r.label for r in chain})
            if unknown:
                raise InputError(
                    f"retrievers: {', '.join(unknown)} not in the retrieval chain; configured: "
                    f"{', '.join(r.label for r in chain) or 'none'}"
                )
            chosen = [r for r in chosen if r.label in labels]
        if not chosen:
            wanted = " or ".join(kinds or ("any",))
            raise InputError(
                f"strategy {strategy!r} needs a {wanted} in the retrieval chain; configured: "
                f"{', '.join(r.label for r in chain) or 'none'}"
            )
        return chosen

    def _search(self, ctx: QueryContext) -> list[SearchHit]:
        rt = self.rt
        pool = pool_size(ctx.limit, rt.config.retrieval.pool_size)
        retrievers = self._retrievers(ctx.strategy)
        vector: list[float] | None = None
        if any(r.query_by == "vector" for r in retrievers):
            embedder = rt.embedder
            if embedder is None:
                raise InputError("an embedding_retriever needs a text_embedder")
            vector = [float(x) for x in embedder.embed([ctx.query])[0]]
        while True:
            hits, full = self._fetch(ctx, retrievers, vector, pool)
            # Scope is matched exactly after the backends' (field-wise) filtering: fetch more
            # while entries of other scopes crowd the kept hits below the limit.
            if len(hits) >= ctx.limit or not full:
                break
            pool *= 4
        return self._rerank(ctx, hits)

    def _fetch(
        self,
        ctx: QueryContext,
        retrievers: Sequence[Retriever],
        vector: list[float] | None,
        pool: int,
    ) -> tuple[list[SearchHit], bool]:
        """One round of the chain with ``pool`` hits per retriever: the fused, loaded hits and
        whether any retriever filled its pool (a bigger pool may find more)."""
        rt = self.rt
        fusion = rt.config.fusion()
        ranked: dict[int, Ranked] = {}
        paths: dict[str, dict[str, list[str]]] = {}
        candidates: list[str] = []
        # Graph retrievers run last: they expand from the other retrievers' best hits.
        for i, r in sorted(enumerate(retrievers), key=lambda p: p[1].query_by == "graph"):
            query: Any = vector if r.query_by == "vector" else ctx.query
            if r.query_by == "graph" and not candidates and ranked:
                candidates = [h.id for h in fuse(fusion.method, list(ranked.values()), k=fusion.k)]

            def call(
                r: Retriever = r, query: Any = query, candidates: list[str] = candidates
            ) -> list[tuple[str, float]]:
                if r.query_by == "graph":
                    found = rt.graph.search(
                        r.backend, query, limit=pool, filter=ctx.filter, candidates=candidates
                    )
                    paths[r.label] = {h.entry_id: describe_path(h.path) for h in found}
                    return [(h.entry_id, float(h.score)) for h in found]
                return list(r.backend.search(query, limit=pool, filter=ctx.filter))

            results = rt.run("search", call, backend=r.name, retriever=r.label, limit=pool)
            ranked[i] = Ranked(r.label, r.weight, results)
        lists = [ranked[i] for i in range(len(retrievers))]
        full = any(len(r.results) >= pool for r in lists)
        fused = fuse(fusion.method, lists, k=fusion.k)
        known: dict[str, Facets] = {}  # the pool's segments and speakers, read once
        extra = self._speaker_lists(ctx, retrievers, lists, fused, known)
        if extra:
            fused = fuse_more(fusion.method, fused, lists, extra, k=fusion.k)
        exchange = rt.config.retrieval.exchange
        if exchange is not None and exchange.share > 0 and len(fused) > 1:
            self._read(fused, known)
            fused = self._exchanges(fused, known, exchange.share, exchange.reach)
        segments = rt.config.retrieval.segments
        if segments is not None and segments.weight > 0 and len(fused) > 1:
            self._read(fused, known)
            topics = {i: facets[0] for i, facets in known.items()}
            fused = boost_segments(fused, topics, segments.weight, segments.hits)
        for hit in fused:
            for label, reached in paths.items():
                if hit.id in reached:
                    hit.paths[label] = reached[hit.id]
        # Without rerankers (or with only rerankers that reorder the first ``limit`` hits they
        # receive, ``top_only``) only the first ``limit`` kept hits count: load the entries of
        # those (in slices, best first), not of the whole pool.
        pool_readers = [r for _, r in rt.backends.rerankers() if not _top_only(r)]
        want = len(fused) if pool_readers else ctx.limit
        return self._load(fused, ctx.filter, want), full

    def _read(self, hits: Sequence[SearchHit], known: dict[str, Facets]) -> None:
        """Add the segment and speaker of the active entries of ``hits`` not in ``known``."""
        missing = [h.id for h in hits if h.id not in known]
        if missing:
            known.update(read_facets(self.rt.store, missing))

    def _exchanges(
        self, fused: list[SearchHit], known: dict[str, Facets], share: float, reach: int
    ) -> list[SearchHit]:
        """The exchange partners' share (``retrieval.exchange``): positions are read only for
        the hits whose segment holds two speakers in the pool (none for a one-speaker pool)."""
        ids = exchange_candidates(fused, known)
        if len(ids) < 2:
            return fused
        positions = read_positions(self.rt.store, ids)
        return boost_exchanges(fused, known, positions, share, reach)

    def _speaker_lists(
        self,
        ctx: QueryContext,
        retrievers: Sequence[Retriever],
        lists: Sequence[Ranked],
        fused: list[SearchHit],
        known: dict[str, Facets],
    ) -> list[Ranked]:
        """For the one speaker the query names among the pool's entries: each vector and text
        retriever's list kept to that speaker's hits (ranked among themselves), to join the
        fusion. ``[]`` when the query names none or several, the pool has one speaker only, or
        the filter already names one."""
        share = self.rt.config.retrieval.named_speaker or 0.0
        if share <= 0 or ctx.filter.speaker is not None or not fused:
            return []
        self._read(fused, known)
        names = {speaker for _, speaker in known.values()}
        if len(names) < 2:
            return []  # one speaker (or none) in the pool: their lists are the lists
        name = named_speaker(ctx.query, (n for n in names if n))
        if name is None:
            return []
        out: list[Ranked] = []
        for r, ranked in zip(retrievers, lists, strict=True):
            if r.kind not in SPEAKER_KINDS or _every_strategy(r.backend):
                continue  # the graph, and retrievers of other media (images)
            own = [(i, score) for i, score in ranked.results if known.get(i, (0, None))[1] == name]
            if own:
                out.append(Ranked(r.label + SPEAKER_SUFFIX, r.weight * share, own))
        return out

    def _load(
        self, fused: list[SearchHit], search_filter: SearchFilter, want: int
    ) -> list[SearchHit]:
        """Attach active entries to the best hits until ``want`` are kept; drop hits whose
        entry is gone or outside the filter.

        A hit the graph reached keeps its entry when only the filter's time bounds reject it:
        for the graph, time bounds select the relations valid then, not when they were said.
        """
        timeless: SearchFilter | None = None
        hits: list[SearchHit] = []
        start, size = 0, max(want, 8)
        while start < len(fused) and len(hits) < want:
            chunk = fused[start : start + size]
            start, size = start + len(chunk), size * 2
            ids = [h.id for h in chunk]
            found = {e.id: e for e in self.rt.store.entries(ids, status="active")}
            for hit in chunk:
                entry = found.get(hit.id)
                if entry is None:
                    continue
                filter_of_hit = search_filter
                if hit.paths:
                    if timeless is None:
                        timeless = attrs.evolve(
                            search_filter, time_gt=None, time_gte=None, time_lt=None, time_lte=None
                        )
                    filter_of_hit = timeless
                if not filter_of_hit.matches(entry.id, entry_payload(entry)):
                    continue
                if not in_scope(entry.scope, search_filter):
                    continue
                hit.entry = entry
                hits.append(hit)
        return hits

    def _rerank(self, ctx: QueryContext, hits: list[SearchHit]) -> list[SearchHit]:
        rerankers = self.rt.backends.rerankers()
        if all(_top_only(r) for _, r in rerankers):
            hits = hits[: ctx.limit]  # what they need: the first ``limit`` hits
        for name, reranker in rerankers:
            given = {id(h): h for h in hits}
            before = {id(h): h.score for h in hits}
            keys_before = {h.id: set(h.scores) for h in hits}

            def call(reranker: Any = reranker, hits: Sequence[SearchHit] = hits) -> Any:
                return reranker.rerank(ctx.query, list(hits), limit=ctx.limit)

            out = list(self.rt.run("rerank", call, backend=name, hits=len(hits)))
            ids = {h.id for h in hits}
            if len(out) > ctx.limit or any(h.id not in ids for h in out):
                raise BackendError(
                    f"reranker {name!r} returned {len(out)} hits for limit {ctx.limit}, or hits "
                    f"it was not given; a reranker returns at most `limit` of the hits it receives"
                )
            _check_reranked(name, hits, out)
            own = normalize_name(name)
            for rank, hit in enumerate(out, start=1):
                hit.ranks[name] = rank
                # a reranker that records its own score under its name (spelt its way) keeps
                # one key: the configured name
                recorded = None
                for key in [k for k in hit.scores if k not in keys_before[hit.id]]:
                    if key != name and normalize_name(key) == own:
                        recorded = hit.scores.pop(key)
                if id(hit) not in given or hit.score != before.get(id(hit)):
                    hit.scores[name] = float(hit.score)
                elif recorded is not None:
                    hit.scores[name] = recorded
            hits = out
        return hits[: ctx.limit]


def _check_reranked(name: str, given: Sequence[SearchHit], out: Sequence[SearchHit]) -> None:
    """What the Reranker Protocol says a reranker keeps: finite scores, and each hit's entry,
    retriever scores and ranks, and graph paths as it was given them."""
    by_id = {h.id: h for h in given}
    for hit in out:
        if not isinstance(hit.score, int | float) or not math.isfinite(hit.score):
            raise BackendError(
                f"reranker {name!r} gave hit {hit.id!r} the score {hit.score!r}; a reranker's "
                f"scores must be finite numbers"
            )
        before = by_id[hit.id]
        lost = [f"paths[{k!r}]" for k, v in before.paths.items() if hit.paths.get(k) != v]
        lost += [f"scores[{k!r}]" for k, v in before.scores.items() if hit.scores.get(k) != v]
        lost += [f"ranks[{k!r}]" for k, v in before.ranks.items() if hit.ranks.get(k) != v]
        if before.entry is not None and hit.entry is None:
            lost.append("entry")
        if lost:
            raise BackendError(
                f"reranker {name!r} returned hit {hit.id!r} without {', '.join(lost)}; a "
                f"reranker keeps the entry, scores, ranks and paths of the hits it is given"
            )
