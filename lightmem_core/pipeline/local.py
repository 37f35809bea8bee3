"""The stages of ingestion that run before the LLM, on local models: the pre-compressor chain
and the topic segmenter, and how a segmented sensory buffer becomes topics.

Ingestion runs them, and so does the dry run (:mod:`.estimate`), so that a dry run sees the
texts and topics a real run would. The dry run passes ``dry_run=True``: its operations are
seen by the wrapper hooks with that detail, and their usage is not booked.
"""

from __future__ import annotations

import itertools
from typing import Any

import attrs
from lightmem_hookspecs import Message

from ..errors import BackendError
from .runtime import Runtime


def compress(rt: Runtime, messages: list[Message], **details: Any) -> list[Message]:
    """``messages`` with their contents through the configured pre-compressors, in order (a
    text a compressor empties keeps its previous form)."""
    compressors = rt.backends.pre_compressors()
    if not compressors or not messages:
        return messages
    texts = [m.content for m in messages]
    for name, backend in compressors:

        def call(backend: Any = backend, texts: list[str] = texts) -> list[str]:
            return list(backend.compress(texts))

        out = rt.run("compress", call, backend=name, texts=len(texts), **details)
        if len(out) != len(texts):
            raise BackendError(
                f"pre_compressor {name!r} returned {len(out)} texts for {len(texts)} inputs"
            )
        texts = [new if new and new.strip() else old for new, old in zip(out, texts, strict=True)]
    return [attrs.evolve(m, content=t) for m, t in zip(messages, texts, strict=True)]


def segment(rt: Runtime, messages: list[Message], **details: Any) -> list[int]:
    """The topic boundaries the configured segmenter places in ``messages`` (none without
    one), checked: sorted, unique, inside the buffer."""
    segmenter = rt.backends.topic_segmenter() if rt.config.topic_segment else None
    if segmenter is None or len(messages) < 2:
        return []
    name = rt.backends.names("topic_segmenter")[0]
    raw = rt.run(
        "segment",
        lambda: segmenter.segment(messages),
        backend=name,
        messages=len(messages),
        **details,
    )
    boundaries = sorted({int(b) for b in raw})
    bad = [b for b in boundaries if not 0 < b < len(messages)]
    if bad:
        raise BackendError(
            f"topic_segmenter {name!r} returned boundaries {bad} outside 1..{len(messages) - 1}"
        )
    return boundaries


def topics(messages: list[Message], boundaries: list[int], force: bool) -> list[list[Message]]:
    """The topics that move on from a sensory buffer cut at ``boundaries``: all of them when
    ``force``, else all but the last (which may go on: it stays in the sensory buffer)."""
    cuts = [0, *boundaries, len(messages)]
    groups = [messages[a:b] for a, b in itertools.pairwise(cuts) if b > a]
    if not force and len(groups) > 1:
        groups = groups[:-1]
    return groups
