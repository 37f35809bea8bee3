"""The filter table the retriever suites share: payloads of every shape and filters on every field.

A suite gives each id of :data:`FILTER_PAYLOADS` a text or vector that its query reaches, so a
search with a large limit would return all of them and only the filter decides which come back;
the expected answer is always :meth:`SearchFilter.matches` of the record's payload.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from lightmem_hookspecs import SearchFilter, to_epoch

DAY = 86400.0
T0 = to_epoch(dt.datetime(2024, 3, 1, 12, 0, 0))


def payload(
    user: str | None = "u1",
    agent: str | None = None,
    run: str | None = None,
    speaker: str | None = None,
    topic: int | None = None,
    day: int | None = None,
) -> dict[str, Any]:
    """A payload as the core writes it; ``day`` counts days after :data:`T0` (``None``: no time)."""
    return {
        "user_id": user,
        "agent_id": agent,
        "run_id": run,
        "speaker": speaker,
        "topic_id": topic,
        "time_stamp": None if day is None else T0 + day * DAY,
    }


#: ``(id, payload)``: scopes, speakers, topics and times, with missing values and an empty payload.
FILTER_PAYLOADS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("f1", payload("u1", "a1", "r1", "Alice", 1, 0)),
    ("f2", payload("u1", "a1", "r2", "Bob", 1, 1)),
    ("f3", payload("u1", "a2", "r1", "Alice", 2, 2)),
    ("f4", payload("u2", "a1", "r1", "Carol", 2, 3)),
    ("f5", payload("u2", None, None, "Bob", None, 4)),
    ("f6", payload("u1", None, None, None, 3, None)),
    ("f7", payload(None, None, None, "Alice", None, 5)),
    ("f8", {}),
)

#: Filters covering every field, alone and combined, and both sides of each time bound.
FILTERS: dict[str, SearchFilter] = {
    "none": SearchFilter(),
    "user": SearchFilter(user_id="u1"),
    "other user": SearchFilter(user_id="u2"),
    "unknown user": SearchFilter(user_id="nobody"),
    "agent": SearchFilter(agent_id="a1"),
    "run": SearchFilter(run_id="r1"),
    "scope": SearchFilter(user_id="u1", agent_id="a1", run_id="r1"),
    "speaker": SearchFilter(speaker="Alice"),
    "speaker + user": SearchFilter(user_id="u1", speaker="Bob"),
    "topic": SearchFilter(topic_id=2),
    "topic + user": SearchFilter(topic_id=1, user_id="u1"),
    "time_gt": SearchFilter(time_gt=T0 + 2 * DAY),
    "time_gte": SearchFilter(time_gte=T0 + 2 * DAY),
    "time_lt": SearchFilter(time_lt=T0 + 2 * DAY),
    "time_lte": SearchFilter(time_lte=T0 + 2 * DAY),
    "time window": SearchFilter(time_gte=T0 + 1 * DAY, time_lt=T0 + 4 * DAY),
    "time as datetime": SearchFilter(time_gte=dt.datetime(2024, 3, 4, 12, 0, 0)),
    "exclude": SearchFilter(exclude_ids=frozenset({"f1", "f6"})),
    "exclude + user": SearchFilter(user_id="u1", exclude_ids=frozenset({"f2"})),
    "exclude unknown id": SearchFilter(exclude_ids=frozenset({"not-stored"})),
    "everything": SearchFilter(
        user_id="u1", speaker="Alice", time_lte=T0 + 10 * DAY, exclude_ids=frozenset({"f3"})
    ),
}
