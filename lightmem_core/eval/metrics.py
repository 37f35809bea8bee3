"""The measures the evaluation harness reports, as small pure functions."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence


def evidence_recall(evidence: Iterable[str], retrieved: Iterable[str]) -> float | None:
    """Share of ``evidence`` ids found among ``retrieved`` ids; ``None`` when there is no evidence.

    ``retrieved`` is the union of the source message ids of the top-k memories, so one memory
    that covers several evidence turns counts for each of them.
    """
    wanted = set(evidence)
    if not wanted:
        return None
    return len(wanted & set(retrieved)) / len(wanted)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation (numpy's default); nan if empty."""
    if not values:
        return math.nan
    if not 0 <= q <= 100:
        raise ValueError(f"percentile: q must be between 0 and 100, got {q}")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def word_count(text: str) -> int:
    """Words of ``text`` as a reader counts them (runs of non-space characters)."""
    return len(text.split())


def mean(values: Iterable[float]) -> float:
    """Arithmetic mean; nan for no values."""
    items = list(values)
    return sum(items) / len(items) if items else math.nan
