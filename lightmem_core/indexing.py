"""What text of an entry the indexes see (BM25 tokens and the embedded text).

The stored memory stays exactly what it is; the indexed text adds what a query may name but
the memory leaves implicit: who said it, when (the date in words, as people ask "in May 2023"),
and the turn it answered ("What's the puppy called?" -> "Biscuit!"). On the LoCoMo development
split each of these raises evidence recall (see docs/evaluation.md).

A fact an LLM extracted gets the same context: the turn before its earliest source message
(when it is in the same batch and close in time), so "Biscuit, after his colour!" is found by
the words of "What did you call the puppy?".
"""

from __future__ import annotations

import datetime as dt

from lightmem_hookspecs import MemoryEntry, Message

#: Entry metadata key holding the turn before the entry's message ("Speaker: text").
CONTEXT_KEY = "context"
#: Words of the previous turn kept as context.
CONTEXT_WORDS = 40
#: The previous turn counts as context only if it came at most this long before.
CONTEXT_MAX_GAP = dt.timedelta(hours=6)


def date_in_words(when: dt.datetime) -> str:
    """``8 May 2023``: the form questions and answers use for dates."""
    return f"{when.day} {when:%B %Y}"


def _speaker(item: Message | MemoryEntry) -> str | None:
    return item.speaker_name or item.speaker_id


def _clip(text: str, words: int) -> str:
    parts = text.split()
    return " ".join(parts[:words]) + (" ..." if len(parts) > words else "")


def message_context(previous: Message | None, message: Message) -> dict[str, str]:
    """Metadata for an entry made from ``message``: the turn before it, when part of one exchange.

    The previous turn is kept if it exists and neither time stamp says it came more than
    :data:`CONTEXT_MAX_GAP` earlier.
    """
    if previous is None:
        return {}
    then, now = previous.time_stamp, message.time_stamp
    if then is not None and now is not None and now - then > CONTEXT_MAX_GAP:
        return {}
    speaker = _speaker(previous) or previous.role
    return {CONTEXT_KEY: f"{speaker}: {_clip(previous.content, CONTEXT_WORDS)}"}


def vector_text(entry: MemoryEntry) -> str:
    """The text embedded for ``entry``: ``"Speaker: memory (Speaker, 8 May 2023)"``.

    The previous turn is left out here: on LoCoMo it adds nothing to hybrid retrieval once BM25
    sees it, and embedding it would double the tokens the encoder runs per entry.
    """
    speaker = _speaker(entry)
    text = f"{speaker}: {entry.memory}" if speaker else entry.memory
    tags = [speaker] if speaker else []
    if entry.time_stamp is not None:
        tags.append(date_in_words(entry.time_stamp))
    if tags:
        text += f" ({', '.join(tags)})"
    return text


def index_text(entry: MemoryEntry) -> str:
    """The text the lexical index (BM25) sees: :func:`vector_text`, then the turn before.

    ``"Speaker: memory (Speaker, 8 May 2023) | PreviousSpeaker: previous turn"``; parts that
    the entry does not have are left out.
    """
    text = vector_text(entry)
    context = entry.metadata.get(CONTEXT_KEY) if entry.metadata else None
    if isinstance(context, str) and context.strip():
        text += f" | {context}"
    return text
