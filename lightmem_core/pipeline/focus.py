"""Three retrieval stages between fusion and the rerankers (``retrieval.named_speaker``,
``retrieval.exchange``, ``retrieval.segments``), all about where a conversation's evidence
lies.

- **Named speaker.** Questions name people ("What did Melanie paint?"), and nearly all the
  evidence of a question that names one speaker was said by that speaker (~97 % on LoCoMo),
  yet a name is one query term among others (and part of every vector). When the query names
  exactly one speaker of the pool's entries, each vector and text retriever's list kept to that
  speaker's hits, ranked among themselves, joins the fusion: the named speaker's turns count
  twice, the others' once.
- **Exchange partners.** An answer is often a reply ("Swimming with the kids!") to a turn
  that carries the question's words ("What do you do for fun, Melanie?"), and the reply in
  turn makes a question's match likelier to be about it: a hit gains ``share`` times the fused
  scores of the pool's hits at most ``reach`` places before or after it in the store's order,
  of its segment, said by another speaker. In a memory of one speaker (a user's side of a chat
  with an assistant) adjacent entries are unrelated turns of the same person, and nothing
  changes: the stage reads no positions when the pool holds one speaker.
- **Segment boost.** Evidence sits in runs of turns of one session (a topic, ``topic_id``): a
  hit gains ``weight`` times the summed fused scores of the best ``hits`` hits of its segment
  in the pool, so a turn whose session also matches elsewhere rises above a lone match.

All read the segment and speaker of the pool's entries: through the record store's
``entry_facets`` (:class:`lightmem_hookspecs.EntryFacets`; the SQLite and Postgres stores have
it) one read of those columns, else the entries themselves. The exchange stage also reads the
positions (:class:`lightmem_hookspecs.EntryPositions`, the ``seq`` column of both stores) of
the hits whose segment holds two speakers in the pool; a store without them leaves it out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from lightmem_hookspecs import EntryFacets, EntryPositions, MemoryEntry, SearchHit

#: Label suffix of a retriever's list searched for the named speaker only.
SPEAKER_SUFFIX = "@speaker"

#: What the two stages read of an entry: its segment (``topic_id``) and its speaker.
Facets = tuple[int | None, str | None]


def read_facets(store: Any, ids: Sequence[str]) -> dict[str, Facets]:
    """``{id: (topic_id, speaker)}`` of the active entries among ``ids``: through the record
    store's ``entry_facets`` where it has one (a read of two columns), else its entries."""
    if isinstance(store, EntryFacets):
        return store.entry_facets(ids)
    return {e.id: (e.topic_id, speaker_name(e)) for e in store.entries(ids, status="active")}


def read_positions(store: Any, ids: Sequence[str]) -> dict[str, int]:
    """``{id: position}`` of the active entries among ``ids`` through the record store's
    ``entry_positions``; ``{}`` for a store without it (the order of its entries is unknown)."""
    if isinstance(store, EntryPositions):
        return store.entry_positions(ids)
    return {}


def exchange_candidates(fused: Sequence[SearchHit], facets: Mapping[str, Facets]) -> list[str]:
    """The ids of the hits whose segment holds hits of two or more speakers in the pool: the
    only ones that can have an exchange partner there (``[]`` for a one-speaker pool)."""
    speakers: dict[int, set[str]] = {}
    for hit in fused:
        topic, speaker = facets.get(hit.id, (None, None))
        if topic is not None and speaker is not None:
            speakers.setdefault(topic, set()).add(speaker)
    mixed = {topic for topic, names in speakers.items() if len(names) > 1}
    if not mixed:
        return []
    return [h.id for h in fused if facets.get(h.id, (None, None))[0] in mixed]


def boost_exchanges(
    fused: Sequence[SearchHit],
    facets: Mapping[str, Facets],
    positions: Mapping[str, int],
    share: float,
    reach: int,
) -> list[SearchHit]:
    """``fused`` (best first) with each hit's score raised by ``share`` times the scores (as
    given) of its exchange partners in it: the hits at most ``reach`` positions away, of the
    same segment, whose known speaker differs from its own. Re-sorted; ties keep their order.
    Hits without a position, segment or speaker neither gain nor give."""
    if share <= 0 or len(fused) < 2:
        return list(fused)
    at: dict[int, SearchHit] = {}
    for hit in fused:
        place = positions.get(hit.id)
        if place is not None:
            at[place] = hit
    gains: dict[int, float] = {}
    for place, hit in at.items():
        topic, speaker = facets.get(hit.id, (None, None))
        if topic is None or speaker is None:
            continue
        gained = 0.0
        for other_place in range(place - reach, place + reach + 1):
            other = at.get(other_place)
            if other is None or other is hit:
                continue
            other_topic, other_speaker = facets.get(other.id, (None, None))
            if other_topic == topic and other_speaker is not None and other_speaker != speaker:
                gained += other.score
        if gained:
            gains[id(hit)] = gained
    if not gains:
        return list(fused)
    for hit in fused:
        hit.score += share * gains.get(id(hit), 0.0)
    return sorted(fused, key=lambda h: -h.score)


def speaker_name(entry: MemoryEntry) -> str | None:
    """The speaker as the indexes' ``speaker`` payload field holds it (name, else id)."""
    return entry.speaker_name or entry.speaker_id


def named_speaker(query: str, speakers: Iterable[str]) -> str | None:
    """The one speaker among ``speakers`` that ``query`` names as a whole word (case-folded),
    or ``None`` when it names none or several."""
    text = query.casefold()
    found = {
        name
        for name in speakers
        if name.strip()
        and re.search(rf"(?<!\w){re.escape(name.casefold().strip())}(?!\w)", text) is not None
    }
    return found.pop() if len(found) == 1 else None


def boost_segments(
    fused: Sequence[SearchHit], topics: Mapping[str, int | None], weight: float, best: int
) -> list[SearchHit]:
    """``fused`` (best first) with each hit's score raised by ``weight`` times the sum of the
    scores of the ``best`` best hits of its segment (``topics``: by hit id; its own included),
    re-sorted; hits of no known segment keep their score. Ties keep their order."""
    if weight <= 0 or len(fused) < 2:
        return list(fused)
    tops: dict[int, list[float]] = {}
    for hit in fused:
        topic = topics.get(hit.id)
        if topic is None:
            continue
        scores = tops.setdefault(topic, [])
        if len(scores) < best:
            scores.append(hit.score)  # the list is best first: these are the segment's best
    totals = {topic: sum(scores) for topic, scores in tops.items()}
    for hit in fused:
        topic = topics.get(hit.id)
        if topic is not None:
            hit.score += weight * totals[topic]
    return sorted(fused, key=lambda h: -h.score)
