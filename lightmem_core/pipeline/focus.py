"""Two retrieval stages between fusion and the rerankers (``retrieval.named_speaker``,
``retrieval.segments``), both about where a conversation's evidence lies.

- **Named speaker.** Questions name people ("What did Melanie paint?"), and nearly all the
  evidence of a question that names one speaker was said by that speaker (~97 % on LoCoMo),
  yet a name is one query term among others (and part of every vector). When the query names
  exactly one speaker of the pool's entries, each vector and text retriever's list kept to that
  speaker's hits, ranked among themselves, joins the fusion: the named speaker's turns count
  twice, the others' once.
- **Segment boost.** Evidence sits in runs of turns of one session (a topic, ``topic_id``): a
  hit gains ``weight`` times the summed fused scores of the best ``hits`` hits of its segment
  in the pool, so a turn whose session also matches elsewhere rises above a lone match.

Both read the segment and speaker of the pool's entries: through the record store's
``entry_facets`` (:class:`lightmem_hookspecs.EntryFacets`; the SQLite and Postgres stores have
it) one read of those columns, else the entries themselves.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from lightmem_hookspecs import EntryFacets, MemoryEntry, SearchHit

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
