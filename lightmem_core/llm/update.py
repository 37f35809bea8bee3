"""Update decisions: what newer facts do to older memories (update, delete or ignore), many at once.

API::

    UpdateCheck(target, candidates)          # an older entry and the newer (entry, score) pairs
    decide_updates(llm, checks, *, prompts=None, prompt="update", max_attempts=3,
                   max_tokens=None) -> list[UpdateDecision]      # ONE call (plus retries)
    decide_update(llm, target, candidates, ...) -> UpdateDecision   # one check
    reconcile_fact(llm, fact_text, neighbours, *, fact_time_stamp=None, ...)
        -> list[UpdateDecision]                                  # one new fact, online
    UpdateDecision(action, target_id, new_memory=None, replaced_by=None, reason="")
    ACTIONS = ("update", "delete", "ignore")
    decisions_schema(count=None) -> dict
    render_checks(checks) -> RenderedChecks                      # what the LLM sees
    estimate_tokens(check) -> int                                # its share of a prompt

One call decides a whole batch of checks. Every entry shown (targets and candidates alike) is
listed once, numbered oldest first (ties by entry id, so the same entries always read the
same and consecutive calls share a longer prompt prefix), with its date and its text as a JSON
string (so a memory that reads like an instruction stays data), then one line per check names
the older entry and the newer ones that resemble it::

    Memories (id, date, text):
    1 2023-05-08 "Caroline went to an LGBTQ support group."
    2 2023-06-09 "Caroline went to the support group again."

    Check (old <- newer):
    1 <- 2

The answer lists only the older memories that change: ``{"decisions": [{"id": 1, "action":
"delete", "new_memory": "", "by": 2}]}``. The schema sent limits ``id`` and ``by`` to the
numbers shown (``minimum`` / ``maximum``, which a grammar-constrained model must follow);
answers are validated leniently and mapped back:

- ``update``: the older entry's text becomes ``new_memory``; an ``update`` without text is an
  invalid item.
- ``delete``: the older entry is obsolete, contradicted or repeated; ``replaced_by`` is the
  newer entry named in ``by`` if it is one of that check's candidates, else the check's most
  similar candidate.
- ``ignore`` (or leaving the entry out): nothing changes.

An id that is not the target of a check is dropped, as is a second decision on the same
target. An answer with invalid items is asked again (up to ``max_attempts`` calls); after the
last attempt its valid items are kept. A reply that never parses raises
:class:`~lightmem_core.llm.structured.StructuredOutputError` (an ``ExtractionError``), so the
caller leaves the checks for the next pass.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs
from lightmem_hookspecs import MemoryEntry

from .prompts import Prompts
from .structured import StructuredOutputError, ask_json

log = logging.getLogger("lightmem")

ACTIONS: tuple[str, ...] = ("update", "delete", "ignore")


@attrs.frozen
class UpdateDecision:
    """What to do with the stored entry ``target_id``."""

    action: str = attrs.field(validator=attrs.validators.in_(ACTIONS))
    target_id: str
    new_memory: str | None = None
    replaced_by: str | None = None
    reason: str = ""


def _pairs(value: Iterable[tuple[MemoryEntry, float]]) -> tuple[tuple[MemoryEntry, float], ...]:
    return tuple(value)


@attrs.frozen
class UpdateCheck:
    """An older entry and the newer entries that may update or supersede it, most similar
    first, each with its similarity."""

    target: MemoryEntry
    candidates: tuple[tuple[MemoryEntry, float], ...] = attrs.field(converter=_pairs)


@attrs.frozen
class RenderedChecks:
    """The text the LLM sees and the numbers it may name."""

    memories: str
    checks: str
    entries: Mapping[int, MemoryEntry]  # number shown -> entry
    targets: Mapping[int, UpdateCheck]  # number of a check's target -> the check


def _date(ts: _dt.datetime | None) -> str:
    return ts.strftime("%Y-%m-%d") if ts is not None else "undated"


def _quoted(text: str) -> str:
    return json.dumps(" ".join(text.split()), ensure_ascii=False)


def _order_key(entry: MemoryEntry) -> tuple[float, str]:
    """Oldest first, ties by id: the same entries are listed the same way in every call."""
    ts = entry.time_stamp
    return (ts.timestamp() if ts is not None else float("-inf"), entry.id)


def render_checks(checks: Sequence[UpdateCheck]) -> RenderedChecks:
    """Number every entry of ``checks`` once, oldest first, and list the checks."""
    seen: dict[str, MemoryEntry] = {}
    for check in checks:
        for entry in (check.target, *(c for c, _ in check.candidates)):
            seen.setdefault(entry.id, entry)
    ordered = sorted(seen.values(), key=_order_key)
    number = {entry.id: k for k, entry in enumerate(ordered, start=1)}
    entries = dict(enumerate(ordered, start=1))
    memory_lines = [f"{k} {_date(e.time_stamp)} {_quoted(e.memory)}" for k, e in entries.items()]
    check_lines = []
    targets: dict[int, UpdateCheck] = {}
    for check in sorted(checks, key=lambda c: number[c.target.id]):
        k = number[check.target.id]
        if k in targets or not check.candidates:
            continue
        targets[k] = check
        newer = ", ".join(str(number[c.id]) for c, _ in check.candidates)
        check_lines.append(f"{k} <- {newer}")
    return RenderedChecks("\n".join(memory_lines), "\n".join(check_lines), entries, targets)


def estimate_tokens(check: UpdateCheck) -> int:
    """About how many prompt tokens ``check`` adds (its entries' lines and its check line;
    an entry shared by several checks is counted in each)."""
    chars = sum(len(e.memory) + 20 for e in (check.target, *(c for c, _ in check.candidates)))
    return chars // 4 + 2 + 2 * len(check.candidates)


_ACTION = {"type": "string", "enum": list(ACTIONS)}


def decisions_schema(count: int | None = None) -> dict[str, Any]:
    """The decisions' JSON schema; with ``count`` (the entries shown), ``id`` and ``by`` are
    limited to 1..count (``by`` 0: none), the stricter schema sent to the LLM."""
    if count:
        ident: dict[str, Any] = {"type": "integer", "minimum": 1, "maximum": count}
        by: dict[str, Any] = {"type": "integer", "minimum": 0, "maximum": count}
    else:
        ident = {"type": ["integer", "string"]}
        by = {"type": ["integer", "string", "null"]}
    item = {
        "type": "object",
        "properties": {
            "id": ident,
            "action": _ACTION,
            "new_memory": {"type": "string"},
            "by": by,
        },
        "required": ["id", "action", "new_memory", "by"],
        "additionalProperties": False,
    }
    return {
        "title": "lightmem_update_decisions",
        "type": "object",
        "properties": {"decisions": {"type": "array", "items": item}},
        "required": ["decisions"],
        "additionalProperties": False,
    }


DECISIONS_SCHEMA: dict[str, Any] = decisions_schema()

OUTPUT_FORMAT = """\
Answer with JSON only: {"decisions": [{"id": 1, "action": "delete", "new_memory": "", "by": 2}]}
List only old memories that change; by: the newer id for delete, else 0. Nothing changes:
{"decisions": []}"""


def _text(value: Any) -> str:
    return " ".join(str(value or "").split())


def _number(value: Any) -> int | None:
    text = str(value if value is not None else "").strip().strip("[]()#").strip().lower()
    text = text.lstrip("mns")
    try:
        return int(text)
    except ValueError:
        return None


def _item_problems(value: Mapping[str, Any]) -> list[str]:
    problems = []
    for k, item in enumerate(value.get("decisions") or []):
        if (
            isinstance(item, Mapping)
            and item.get("action") == "update"
            and not _text(item.get("new_memory"))
        ):
            problems.append(f"$.decisions[{k}].new_memory: an update needs the merged text")
    return problems


def decide_updates(
    llm: Any,
    checks: Sequence[UpdateCheck],
    *,
    prompts: Prompts | None = None,
    prompt: str = "update",
    max_attempts: int = 3,
    max_tokens: int | None = None,
) -> list[UpdateDecision]:
    """Ask ``llm`` in ONE call (plus retries) what the newer entries of each check do to its
    older entry. Returns the ``update`` and ``delete`` decisions, one per target at most, in the
    targets' order (oldest first). ``prompt`` is ``"update"`` (offline) or ``"reconcile"``
    (online). With no check that has candidates, nothing is asked."""
    shown = render_checks(checks)
    if not shown.targets:
        return []
    prompts = prompts or Prompts()
    request = [
        {"role": "system", "content": prompts.system},
        {
            "role": "user",
            "content": prompts.render(
                prompt, memories=shown.memories, checks=shown.checks, output_format=OUTPUT_FORMAT
            ),
        },
    ]
    try:
        items = ask_json(
            llm,
            request,
            DECISIONS_SCHEMA,
            prompts=prompts,
            check=_item_problems,
            max_attempts=max_attempts,
            max_tokens=max_tokens,
            what=f"update decisions for {len(shown.targets)} entries",
            request_schema=decisions_schema(len(shown.entries)),
        ).value["decisions"]
    except StructuredOutputError as exc:
        if not isinstance(exc.value, Mapping):
            raise
        log.warning("update decisions: %s; keeping only the valid ones", exc)
        items = exc.value.get("decisions")
        items = [i for i in items if isinstance(i, Mapping)] if isinstance(items, list) else []
    chosen: dict[int, UpdateDecision] = {}
    for item in items:
        k = _number(item.get("id"))
        check = shown.targets.get(k) if k is not None else None
        action = item.get("action")
        if k is None or check is None or k in chosen or action not in ("update", "delete"):
            continue
        target = check.target
        if action == "update":
            new_memory = _text(item.get("new_memory"))
            if new_memory and new_memory != _text(target.memory):
                chosen[k] = UpdateDecision("update", target.id, new_memory, reason="merged")
            continue
        by = shown.entries.get(_number(item.get("by")) or 0)
        ids = [c.id for c, _ in check.candidates]
        replaced_by = by.id if by is not None and by.id in ids else ids[0]
        chosen[k] = UpdateDecision("delete", target.id, replaced_by=replaced_by, reason="newer")
    return [chosen[k] for k in sorted(chosen)]


def decide_update(
    llm: Any,
    target: MemoryEntry,
    candidates: Sequence[tuple[MemoryEntry, float]],
    *,
    prompts: Prompts | None = None,
    max_attempts: int = 3,
    max_tokens: int | None = None,
) -> UpdateDecision:
    """One check: what the newer ``candidates`` do to ``target`` (``ignore`` if nothing)."""
    decisions = decide_updates(
        llm,
        [UpdateCheck(target, candidates)],
        prompts=prompts,
        max_attempts=max_attempts,
        max_tokens=max_tokens,
    )
    return decisions[0] if decisions else UpdateDecision("ignore", target.id)


NEW_FACT_ID = "new-fact"


def reconcile_fact(
    llm: Any,
    fact_text: str,
    neighbours: Sequence[tuple[MemoryEntry, float]],
    *,
    prompts: Prompts | None = None,
    fact_time_stamp: _dt.datetime | None = None,
    max_attempts: int = 3,
    max_tokens: int | None = None,
) -> list[UpdateDecision]:
    """Which stored ``neighbours`` one new fact updates or supersedes (one call + retries);
    ``replaced_by`` is left ``None`` (the caller knows the new entry's id)."""
    fact = MemoryEntry(id=NEW_FACT_ID, memory=fact_text, time_stamp=fact_time_stamp)
    checks = [UpdateCheck(entry, [(fact, score)]) for entry, score in neighbours]
    decisions = decide_updates(
        llm,
        checks,
        prompts=prompts,
        prompt="reconcile",
        max_attempts=max_attempts,
        max_tokens=max_tokens,
    )
    return [attrs.evolve(d, replaced_by=None) for d in decisions]
