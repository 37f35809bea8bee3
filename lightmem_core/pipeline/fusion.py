"""Fusion: many retrievers' ranked lists become one list of hits, each carrying every
retriever's score and rank. Chosen by name in the configuration (``retrieval.fusion.method``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import attrs
from lightmem_hookspecs import SearchHit


@attrs.frozen
class Ranked:
    """One retriever's answer: its label, fusion weight and ``(id, score)`` pairs, best first."""

    label: str
    weight: float
    results: Sequence[tuple[str, float]]


def _collect(
    lists: Sequence[Ranked], hits: dict[str, SearchHit] | None = None
) -> dict[str, SearchHit]:
    """Every listed id's hit (added to ``hits`` when given) with each list's score and rank."""
    hits = {} if hits is None else hits
    for ranked in lists:
        for rank, (entry_id, score) in enumerate(ranked.results, start=1):
            hit = hits.setdefault(entry_id, SearchHit(id=entry_id, score=0.0))
            if ranked.label not in hit.scores:
                hit.scores[ranked.label] = float(score)
                hit.ranks[ranked.label] = rank
    return hits


def _ordered(hits: dict[str, SearchHit]) -> list[SearchHit]:
    # Ties keep first-seen order (the chain's order, then each list's rank): sorted is stable.
    return sorted(hits.values(), key=lambda h: -h.score)


def _rrf_add(hits: dict[str, SearchHit], ranked: Ranked, k: int) -> None:
    for hit_id in dict(ranked.results):
        hit = hits[hit_id]
        hit.score += ranked.weight / (k + hit.ranks[ranked.label])


def _weighted_add(hits: dict[str, SearchHit], ranked: Ranked, k: int) -> None:
    if not ranked.results:
        return
    values = [float(s) for _, s in ranked.results]
    low, high = min(values), max(values)
    span = high - low
    for hit_id in dict(ranked.results):
        raw = hits[hit_id].scores[ranked.label]
        norm = (raw - low) / span if span > 0 else 1.0
        hits[hit_id].score += ranked.weight * norm


def _fuse(
    lists: Sequence[Ranked], k: int, add: Callable[[dict[str, SearchHit], Ranked, int], None]
) -> list[SearchHit]:
    hits = _collect(lists)
    if len(lists) == 1:
        for hit in hits.values():
            hit.score = hit.scores[lists[0].label]
        return _ordered(hits)
    for ranked in lists:
        add(hits, ranked, k)
    return _ordered(hits)


def rrf(lists: Sequence[Ranked], *, k: int) -> list[SearchHit]:
    """Reciprocal-rank fusion: ``score = sum(weight / (k + rank))`` over the lists a hit is in.

    With a single list the hits keep that retriever's own scores.
    """
    return _fuse(lists, k, _rrf_add)


def weighted(lists: Sequence[Ranked], *, k: int = 0) -> list[SearchHit]:
    """Weighted sum of min-max normalised scores (each list's best = 1, worst = 0; a list whose
    scores are all equal gives 1 to each). ``k`` is ignored."""
    return _fuse(lists, k, _weighted_add)


#: Fusion methods by the name the configuration uses.
FUSIONS: dict[str, Callable[..., list[SearchHit]]] = {"rrf": rrf, "weighted": weighted}
_ADD = {"rrf": _rrf_add, "weighted": _weighted_add}


def fuse(method: str, lists: Sequence[Ranked], *, k: int) -> list[SearchHit]:
    return FUSIONS[method](lists, k=k)


def fuse_more(
    method: str,
    fused: Sequence[SearchHit],
    lists: Sequence[Ranked],
    more: Sequence[Ranked],
    *,
    k: int,
) -> list[SearchHit]:
    """``fuse(method, [*lists, *more])``, given ``fused = fuse(method, lists)``: the hits of
    ``fused`` (updated in place) gain the contributions of ``more`` instead of every list being
    fused again. Same scores and the same order, ties included."""
    if len(lists) < 2 or not more:
        return fuse(method, [*lists, *more], k=k)
    hits = _collect(more, {hit.id: hit for hit in fused})
    for ranked in more:
        _ADD[method](hits, ranked, k)
    first_seen: dict[str, int] = {}
    for ranked in (*lists, *more):
        for entry_id, _ in ranked.results:
            first_seen.setdefault(entry_id, len(first_seen))
    return sorted(hits.values(), key=lambda h: (-h.score, first_seen[h.id]))
