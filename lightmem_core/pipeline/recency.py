"""Newer facts first: the order of retrieved memories that compete for the same answer.

With an LLM, the update stage supersedes an outdated fact ("I live in Paris" after "I moved to
Berlin"). Without one both stay, and retrieval may rank the old one first at the same score.
This step runs on the final hits (it never adds or drops one, so recall@k is unchanged): a hit
moves ahead of an older hit it competes with — the two share two content words, or one the
query names (the subject, e.g. "data engineer", "Portuguese") and the newer scores at least
:data:`SCORE_RATIO` of the older — unless the query asks about the past or about an event in
the past tense ("Where did I live before?", "When did ... go?").

Scores stay in rank order: a hit moved ahead takes the score of the hit it passed, and keeps
its own in ``scores["newer_first"]``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import attrs
from lightmem_hookspecs import SearchHit

#: A newer hit passes an older one only if its score is at least this share of the older's.
SCORE_RATIO = 0.4

_WORD = re.compile(r"[^\W_]+", re.UNICODE)

#: Words that carry no subject: function words and the filler of chat turns.
_STOPWORD_TEXT = """
    a about after again all also am an and any are as at be been before being but by can could
    did do does doing don for from get got had has have having he her here him his how i if in
    into is it its just let like me more most my no not now of off on once only or other our
    out over own really same she should so some still such than that the their them then there
    these they this those through to too under until up very was we well were what when where
    which while who why will with would you your yes yeah oh ok okay hi hello hey thanks thank
    great good nice wow sure right one two new next last today week month year day morning
    evening time thing things lot much many way going go went come came make made
"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())

#: Query words that ask about an earlier state of things, or about an event (past tense:
#: "When did ... go", "What was ..."), not about how things are now.
_PAST = re.compile(
    r"\b(before|previous(ly)?|former(ly)?|originally|initially|at first|used to|earlier|"
    r"old|past|first|no longer|anymore|any more|until|back then|ago|did|didn't|was|wasn't|"
    r"were|weren't|had|hadn't)\b",
    re.IGNORECASE,
)


def asks_about_the_past(query: str) -> bool:
    """Whether ``query`` asks how things were, not how they are."""
    return _PAST.search(query) is not None


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def _subjects(hit: SearchHit) -> frozenset[str]:
    entry = hit.entry
    if entry is None:
        return frozenset()
    speakers = {(entry.speaker_name or "").casefold(), (entry.speaker_id or "").casefold()}
    words = (w.casefold() for w in _WORD.findall(entry.memory))
    return frozenset(
        _stem(w) for w in words if len(w) > 2 and w not in _STOPWORDS and w not in speakers
    )


def _when(hit: SearchHit) -> float | None:
    entry = hit.entry
    if entry is None or entry.time_stamp is None:
        return None
    return entry.time_stamp.timestamp()


def newer_first(query: str, hits: Sequence[SearchHit]) -> list[SearchHit]:
    """``hits`` reordered so that a newer competing memory precedes the older one."""
    if len(hits) < 2 or asks_about_the_past(query):
        return list(hits)
    placed: list[SearchHit] = []
    subjects: dict[int, frozenset[str]] = {id(h): _subjects(h) for h in hits}
    asked = frozenset(_stem(w.casefold()) for w in _WORD.findall(query))

    def compete(a: SearchHit, b: SearchHit) -> bool:
        shared = subjects[id(a)] & subjects[id(b)]
        return len(shared) >= 2 or bool(shared & asked)

    for hit in hits:
        when = _when(hit)
        position = len(placed)
        if when is not None and subjects[id(hit)]:
            for i, earlier in enumerate(placed):
                then = _when(earlier)
                if (
                    then is not None
                    and when > then
                    and hit.score >= SCORE_RATIO * earlier.score
                    and compete(hit, earlier)
                ):
                    position = i
                    break
        placed.insert(position, hit)
    return _monotonic(placed)


def _monotonic(hits: list[SearchHit]) -> list[SearchHit]:
    """Raise each moved hit's score to the best score below it (the one it passed)."""
    out = list(hits)
    best = float("-inf")
    for i in range(len(out) - 1, -1, -1):
        hit = out[i]
        if hit.score < best:
            out[i] = attrs.evolve(hit, score=best, scores={**hit.scores, "newer_first": hit.score})
        best = max(best, out[i].score)
    return out
