"""Timing helpers shared by the benchmark scripts (imported as a sibling module)."""

from __future__ import annotations

import functools
import time
from collections.abc import MutableMapping
from typing import Any


def time_calls(owner: Any, name: str, label: str, timers: MutableMapping[str, float]) -> None:
    """Replace ``owner.name`` by a wrapper that adds each call's wall time to ``timers[label]``."""
    original = getattr(owner, name)

    @functools.wraps(original)
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            timers[label] += time.perf_counter() - started

    setattr(owner, name, timed)


def percentile(values: list[float], q: float) -> float:
    """The value at quantile ``q`` (nearest rank, rounding) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]
