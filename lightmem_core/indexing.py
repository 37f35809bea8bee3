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
from collections.abc import Sequence
from typing import Any

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
    speaker = speaker_of(previous) or previous.role
    return {CONTEXT_KEY: f"{speaker}: {_clip(previous.content, CONTEXT_WORDS)}"}


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
    """The text the lexical index (BM25) sees: :func:`labelled_text`, then the turn before.

    ``"Speaker: memory (Speaker, 8 May 2023) | PreviousSpeaker: previous turn"``; parts that
    the entry does not have are left out.
    """
    text = labelled_text(entry)
    context = entry.metadata.get(CONTEXT_KEY) if entry.metadata else None
    if isinstance(context, str) and context.strip():
        text += f" | {context}"
    return text
