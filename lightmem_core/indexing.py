"""What text of an entry the indexes see (BM25 tokens and the embedded text)."""

from __future__ import annotations

from lightmem_hookspecs import MemoryEntry


def index_text(entry: MemoryEntry) -> str:
    """The text indexed for ``entry``: the speaker's name, then the memory."""
    speaker = entry.speaker_name or entry.speaker_id
    return f"{speaker}: {entry.memory}" if speaker else entry.memory
