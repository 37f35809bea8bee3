"""Newer facts first: the built-in ``newer_first`` reranker.

With an LLM, the update stage supersedes an outdated fact ("I live in Paris" after "I moved to
Berlin"). Without one both stay, and retrieval may rank the old one first at the same score.
The configuration's defaults therefore put this reranker in the reranker chain of a memory with
no ``memory_manager`` (``reranker: []`` removes it; naming it in ``reranker`` /
``retrieval.rerankers`` places it anywhere in the chain, with or without an LLM).

It reorders the hits it receives, then keeps ``limit`` of them; as the only reranker it receives
the first ``limit`` hits of the fused list (it says ``top_only``, the optional
:class:`~lightmem_hookspecs.TopOnly`), so recall@k is unchanged. A hit moves ahead of an
older hit it competes with — the two share two content words, or one the query names (the
subject, e.g. "data engineer", "Portuguese") and the newer scores at least ``score_ratio`` of
the older — unless the query asks about the past or about an event in the past tense
("Where did I live before?", "When did ... go?").

Scores stay in rank order: a hit moved ahead takes the score of the hit it passed. The
language-specific parts (the stopwords, the past-tense pattern, the stemmer's suffixes and the
word pattern) are options with English defaults (:mod:`lightmem_core.language`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import attrs
from lightmem_hookspecs import SearchHit
from lightmem_hookspecs.options import OptionError, at_least, unit_interval

from .language import ENGLISH_CHAT_STOPWORDS, ENGLISH_PAST_PATTERN, ENGLISH_SUFFIXES

#: A newer hit passes an older one only if its score is at least this share of the older's.
SCORE_RATIO = 0.4
#: Word stems a reranker remembers (then it starts again).
STEM_CACHE = 50_000


def _regex(_inst: Any, attribute: attrs.Attribute, value: str) -> None:
    try:
        re.compile(value)
    except re.error as exc:
        raise OptionError.at(
            attribute, f"not a valid regular expression ({exc})", "write a Python (re) pattern"
        ) from None


@attrs.frozen
class NewerFirstOptions:
    """Options of the ``newer_first`` reranker (English by default).

    ``stopwords``: words that name no subject; ``past_pattern``: a regular expression (matched
    case-insensitively) for queries about the past, which are left in their order;
    ``suffixes``: what a light stemmer strips; ``word_pattern``: what a word is;
    ``min_word_length``: shorter words name no subject; ``score_ratio``: a newer hit passes an
    older one only if it scores at least this share of it.
    """

    stopwords: tuple[str, ...] = attrs.field(
        default=tuple(sorted(ENGLISH_CHAT_STOPWORDS)), converter=tuple
    )
    past_pattern: str = attrs.field(default=ENGLISH_PAST_PATTERN, validator=_regex)
    suffixes: tuple[str, ...] = attrs.field(default=ENGLISH_SUFFIXES, converter=tuple)
    word_pattern: str = attrs.field(default=r"[^\W_]+", validator=_regex)
    min_word_length: int = attrs.field(default=3, validator=at_least(1))
    score_ratio: float = attrs.field(default=SCORE_RATIO, validator=unit_interval)


class NewerFirst:
    """The ``newer_first`` reranker (see the module docs)."""

    #: It needs no more than the first ``limit`` hits: when every reranker of the chain says
    #: so, the core loads and hands over only those (recall@limit is then unchanged).
    top_only = True

    def __init__(self, options: NewerFirstOptions | None = None) -> None:
        o = options or NewerFirstOptions()
        self.options = o
        self._stopwords = frozenset(w.casefold() for w in o.stopwords)
        self._past = re.compile(o.past_pattern, re.IGNORECASE)
        self._word = re.compile(o.word_pattern, re.UNICODE)
        self._suffixes = tuple(sorted(o.suffixes, key=len, reverse=True))
        #: Stems of the words met so far (a memory's vocabulary is small; emptied when full).
        self._stems: dict[str, str] = {}

    def rerank(self, query: str, hits: Sequence[SearchHit], *, limit: int) -> list[SearchHit]:
        return self.order(query, hits)[:limit]

    def asks_about_the_past(self, query: str) -> bool:
        """Whether ``query`` asks how things were, not how they are."""
        return self._past.search(query) is not None

    def _stem(self, word: str) -> str:
        stem = self._stems.get(word)
        if stem is None:
            stem = word
            for suffix in self._suffixes:
                if len(word) > len(suffix) + 2 and word.endswith(suffix):
                    stem = word[: -len(suffix)]
                    break
            if len(self._stems) >= STEM_CACHE:
                self._stems.clear()
            self._stems[word] = stem
        return stem

    def _subjects(self, hit: SearchHit) -> frozenset[str]:
        entry = hit.entry
        if entry is None:
            return frozenset()
        speakers = {(entry.speaker_name or "").casefold(), (entry.speaker_id or "").casefold()}
        words = (w.casefold() for w in self._word.findall(entry.memory))
        return frozenset(
            self._stem(w)
            for w in words
            if len(w) >= self.options.min_word_length
            and w not in self._stopwords
            and w not in speakers
        )

    def order(self, query: str, hits: Sequence[SearchHit]) -> list[SearchHit]:
        """``hits`` reordered so that a newer competing memory precedes the older one."""
        if len(hits) < 2 or self.asks_about_the_past(query):
            return list(hits)
        ratio = self.options.score_ratio
        placed: list[SearchHit] = []
        subjects: dict[int, frozenset[str]] = {}  # by id(hit), read only where two may compete
        asked = frozenset(self._stem(w.casefold()) for w in self._word.findall(query))

        def subjects_of(hit: SearchHit) -> frozenset[str]:
            found = subjects.get(id(hit))
            if found is None:
                found = subjects[id(hit)] = self._subjects(hit)
            return found

        def compete(a: SearchHit, b: SearchHit) -> bool:
            shared = subjects_of(a) & subjects_of(b)
            return len(shared) >= 2 or bool(shared & asked)

        for hit in hits:
            when = _when(hit)
            position = len(placed)
            if when is not None:
                for i, earlier in enumerate(placed):
                    then = _when(earlier)
                    if (
                        then is not None
                        and when > then
                        and hit.score >= ratio * earlier.score
                        and compete(hit, earlier)
                    ):
                        position = i
                        break
            placed.insert(position, hit)
        return _monotonic(placed)


def _when(hit: SearchHit) -> float | None:
    entry = hit.entry
    if entry is None or entry.time_stamp is None:
        return None
    return entry.time_stamp.timestamp()


def _monotonic(hits: list[SearchHit]) -> list[SearchHit]:
    """Raise each moved hit's score to the best score below it (the one it passed), keeping
    its own in ``scores["newer_first"]``."""
    out = list(hits)
    best = float("-inf")
    for i in range(len(out) - 1, -1, -1):
        hit = out[i]
        if hit.score < best:
            out[i] = attrs.evolve(hit, score=best, scores={**hit.scores, "newer_first": hit.score})
        best = max(best, out[i].score)
    return out


_ENGLISH = NewerFirst()


def asks_about_the_past(query: str) -> bool:
    """Whether ``query`` asks how things were, not how they are (English defaults)."""
    return _ENGLISH.asks_about_the_past(query)


def newer_first(query: str, hits: Sequence[SearchHit]) -> list[SearchHit]:
    """``hits`` reordered newer first with the English defaults (see :class:`NewerFirst`)."""
    return _ENGLISH.order(query, hits)
