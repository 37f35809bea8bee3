"""What of an entry the indexes see (BM25 tokens, the embedded text and vector).

The stored memory stays exactly what it is; the indexes add what a query may name but the
memory leaves implicit: who said it, when (the date in words, as people ask "in May 2023"),
and the turn it answered ("What's the puppy called?" -> "Biscuit!"). The lexical index reads
all of it as text; the vector is the memory's embedding plus its speaker's name's embedding.
On the LoCoMo development split each of these raises evidence recall (see docs/evaluation.md).

A fact an LLM extracted gets the same context: the turn before its earliest source message
(when it is in the same batch and close in time), so "Biscuit, after his colour!" is found by
the words of "What did you call the puppy?".
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Sequence
from typing import Any

from lightmem_hookspecs import MemoryEntry, Message

#: Entry metadata key holding the turn before the entry's message ("Speaker: text").
CONTEXT_KEY = "context"
#: Entry metadata key holding the turn after the entry's message, with
#: ``indexing.next_turn_words`` ("Speaker: text").
NEXT_KEY = "next"
#: Entry metadata key of a passage entry: ``{"index", "of", "start", "end"}`` (its number among
#: the message's passages, how many there are, and its character span in the message).
PASSAGE_KEY = "passage"
#: Words of the previous turn kept as context.
CONTEXT_WORDS = 40
#: The previous turn counts as context only if it came at most this long before.
CONTEXT_MAX_GAP = dt.timedelta(hours=6)


def date_in_words(when: dt.datetime) -> str:
    """``8 May 2023``: the form questions and answers use for dates."""
    return f"{when.day} {when:%B %Y}"


def _clip(text: str, words: int) -> str:
    parts = text.split()
    return " ".join(parts[:words]) + (" ..." if len(parts) > words else "")


def _exchange_turn(earlier: Message, later: Message, shown: Message, words: int) -> str | None:
    """``"Speaker: words ..."`` of ``shown`` (``earlier`` or ``later``), or ``None`` when the
    two turns are not one exchange: both time stamps known and more than
    :data:`CONTEXT_MAX_GAP` apart."""
    then, now = earlier.time_stamp, later.time_stamp
    if then is not None and now is not None and now - then > CONTEXT_MAX_GAP:
        return None
    speaker = speaker_of(shown) or shown.role
    return f"{speaker}: {_clip(shown.content, words)}"


def message_context(previous: Message | None, message: Message) -> dict[str, str]:
    """Metadata for an entry made from ``message``: the turn before it, when part of one exchange.

    The previous turn is kept if it exists and neither time stamp says it came more than
    :data:`CONTEXT_MAX_GAP` earlier.
    """
    if previous is None:
        return {}
    text = _exchange_turn(previous, message, previous, CONTEXT_WORDS)
    return {} if text is None else {CONTEXT_KEY: text}


def reply_context(message: Message, following: Message | None, words: int) -> dict[str, str]:
    """Metadata for an entry made from ``message``: the first ``words`` words of the turn after
    it, when part of one exchange (as for :func:`message_context`); none when ``words`` is 0."""
    if following is None or words <= 0:
        return {}
    text = _exchange_turn(message, following, following, words)
    return {} if text is None else {NEXT_KEY: text}


def labelled_text(entry: MemoryEntry) -> str:
    """``"Speaker: memory (Speaker, 8 May 2023)"``: the memory, who said it and when."""
    speaker = speaker_of(entry)
    text = f"{speaker}: {entry.memory}" if speaker else entry.memory
    tags = [speaker] if speaker else []
    if entry.time_stamp is not None:
        tags.append(date_in_words(entry.time_stamp))
    if tags:
        text += f" ({', '.join(tags)})"
    return text


def speaker_of(entry: Message | MemoryEntry) -> str | None:
    """Who said it: the speaker's name, else the speaker's id (``None``: not recorded)."""
    return entry.speaker_name or entry.speaker_id


def embedded_text(entry: MemoryEntry) -> str:
    """The text the encoder reads for ``entry``: the memory alone.

    Who said it is added to the vector instead (:func:`with_speakers`): the encoder runs over
    each distinct speaker's name once, not over every turn again. The previous turn is left out:
    on LoCoMo it adds nothing to hybrid retrieval once BM25 sees it, and embedding it would
    double the tokens the encoder runs per entry.
    """
    return entry.memory


def with_speakers(vectors: Any, speakers: Sequence[Any | None], weight: float) -> Any:
    """Each row plus its speaker's name vector: ``unit(unit(text) + weight * unit(name))``.

    ``vectors``: the texts' embeddings (one row each); ``speakers``: per row, the embedding of
    its speaker's name, or ``None`` (that row is only normalised). On LoCoMo this finds more
    than embedding ``"Speaker: memory (Speaker, date)"`` as one text (docs/evaluation.md):
    questions name people, and the name weighs as much as the whole turn however long it is.
    """
    import numpy as np

    out = np.array(vectors, dtype=np.float32, copy=True)
    out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    if weight > 0:
        for row, name in enumerate(speakers):
            if name is None:
                continue
            name = np.asarray(name, dtype=np.float32)
            out[row] += weight * name / max(float(np.linalg.norm(name)), 1e-12)
            out[row] /= max(float(np.linalg.norm(out[row])), 1e-12)
    return out


def index_text(entry: MemoryEntry) -> str:
    """The text the lexical index (BM25) sees: :func:`labelled_text`, the turn before, the
    turn after (recorded only with ``indexing.next_turn_words``).

    ``"Speaker: memory (Speaker, 8 May 2023) | PreviousSpeaker: previous turn | NextSpeaker:
    next turn"``; parts that the entry does not have are left out.
    """
    text = labelled_text(entry)
    for key in (CONTEXT_KEY, NEXT_KEY):
        context = entry.metadata.get(key) if entry.metadata else None
        if isinstance(context, str) and context.strip():
            text += f" | {context}"
    return text


#: Where a sentence ends: ``.``, ``!`` or ``?`` (then closing quotes or brackets) before
#: whitespace, or a line break (list items and paragraphs end there too).
_SENTENCE_END = re.compile(r"[.!?\u2026]+[\"'\u201d\u2019)\]]*\s+|\s*\n\s*")
_WORD = re.compile(r"\S+")


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each sentence of ``text``, surrounding whitespace left out."""
    spans: list[tuple[int, int]] = []
    start = 0
    for match in [*_SENTENCE_END.finditer(text), None]:
        end = match.end() if match is not None else len(text)
        words = list(_WORD.finditer(text, start, end))
        if words:
            spans.append((words[0].start(), words[-1].end()))
        start = end
    return spans


def passage_spans(text: str, max_words: int) -> list[tuple[int, int]]:
    """``(start, end)`` of the passages of ``text``: whole sentences, at most ``max_words`` words.

    A text of at most ``max_words`` words is one passage. A longer one is cut into as many
    passages as its length needs, each filled with sentences up to an even share of the words
    (never past ``max_words``); a sentence longer than ``max_words`` is cut between words into
    even parts. Whitespace between passages belongs to none.
    """
    if max_words < 1:
        raise ValueError("max_words must be at least 1")
    total = len(text.split())
    if total <= max_words:
        return [(0, len(text))]
    units: list[tuple[int, int, int]] = []  # start, end, words
    for start, end in sentence_spans(text):
        words = list(_WORD.finditer(text, start, end))
        if len(words) <= max_words:
            units.append((start, end, len(words)))
            continue
        parts = math.ceil(len(words) / max_words)
        size = math.ceil(len(words) / parts)
        for i in range(0, len(words), size):
            chunk = words[i : i + size]
            units.append((chunk[0].start(), chunk[-1].end(), len(chunk)))
    share = total / math.ceil(total / max_words)
    out: list[tuple[int, int, int]] = []
    for start, end, size in units:
        if out and out[-1][2] < share and out[-1][2] + size <= max_words:
            first, _, held = out[-1]
            out[-1] = (first, end, held + size)
        else:
            out.append((start, end, size))
    # A short tail joins the passage before it when both fit in one.
    if len(out) > 1 and out[-1][2] + out[-2][2] <= max_words:
        tail = out.pop()
        out[-1] = (out[-1][0], tail[1], out[-1][2] + tail[2])
    return [(start, end) for start, end, _ in out]


def passage_of(entry: MemoryEntry) -> dict[str, Any] | None:
    """The entry's place in its message when it is one of several passages, else ``None``."""
    place = entry.metadata.get(PASSAGE_KEY) if entry.metadata else None
    return place if isinstance(place, dict) else None


def same_message_passages(a: MemoryEntry, b: MemoryEntry) -> bool:
    """Whether ``a`` and ``b`` are two passages of one message (parts, not two statements)."""
    return (
        passage_of(a) is not None
        and passage_of(b) is not None
        and a.source_message_ids == b.source_message_ids
    )
