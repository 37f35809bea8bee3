"""Update decisions: what a newer fact does to an older memory (update, delete or ignore).

API::

    decide_update(llm, target, candidates, *, prompts=None, max_attempts=3, max_tokens=None)
        -> UpdateDecision                                  # offline ("sleep-time") pass
    reconcile_fact(llm, fact_text, neighbours, *, prompts=None, fact_time_stamp=None,
                   max_attempts=3, max_tokens=None)
        -> list[UpdateDecision]                            # online, right after extraction
    UpdateDecision(action, target_id, new_memory=None, replaced_by=None, reason="")
    ACTIONS = ("update", "delete", "ignore")
    update_schema(candidate_ids=None), reconcile_schema(neighbour_ids=None) -> dict

``target`` is a stored :class:`~lightmem_hookspecs.MemoryEntry`; ``candidates`` and
``neighbours`` are ``(MemoryEntry, similarity)`` pairs. The entries are shown to the model with
short ids (``[n1]`` for the newer candidates, ``[s1]`` for stored neighbours), their time stamps
and similarity; the newer fact wins any conflict. The schema sent limits the ids the model may
name to those shown (an ``enum``, which a grammar-constrained model must follow); answers are
validated leniently and unknown ids dropped.

- ``update``: the older entry's text becomes ``new_memory`` (the merged text); an ``update``
  without a new text is an invalid answer.
- ``delete``: the older entry is obsolete, contradicted or repeated; ``replaced_by`` is the id
  of the newer entry that replaces it (``decide_update``: the named candidate, or ``None`` when
  the model named none it was shown; ``reconcile_fact``: always ``None``, the caller knows the new
  entry's id).
- ``ignore``: nothing changes.

An invalid answer (unknown action, ``update`` without text) is asked again up to
``max_attempts`` calls; if the last answer still parsed as JSON the decision falls back to
``ignore`` (for ``reconcile_fact``: its valid decisions are kept, the others dropped). A reply
that never parses raises :class:`~lightmem_core.llm.structured.StructuredOutputError` (an
``ExtractionError``), so the caller can leave the entry for the next pass.
``reconcile_fact`` returns only ``update`` and ``delete`` decisions, one per stored neighbour at
most, in the neighbours' order; ids it was not shown are dropped.
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
from lightmem_hookspecs import MemoryEntry

from .prompts import Prompts
from .structured import StructuredOutputError, ask_json, excerpt

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


def _time(ts: _dt.datetime | None) -> str:
    return ts.strftime("%Y-%m-%d (%a) %H:%M") if ts is not None else "time unknown"


def _line(short: str, entry: MemoryEntry, score: float | None = None) -> str:
    similarity = f" (similarity {score:.2f})" if score is not None else ""
    return f"[{short}] {_time(entry.time_stamp)}{similarity}: {' '.join(entry.memory.split())}"


_ACTION = {"type": "string", "enum": list(ACTIONS)}


def update_schema(candidate_ids: Sequence[str] | None = None) -> dict[str, Any]:
    """The offline decision's JSON schema; with ids, ``replaced_by`` is limited to them or ``""``
    (the stricter schema sent to the LLM; answers are validated against the one without ids)."""
    replaced_by = (
        {"type": "string", "enum": ["", *candidate_ids]} if candidate_ids else {"type": "string"}
    )
    return {
        "title": "lightmem_update_decision",
        "type": "object",
        "properties": {
            "action": _ACTION,
            "new_memory": {"type": "string"},
            "replaced_by": replaced_by,
            "reason": {"type": "string"},
        },
        "required": ["action", "new_memory", "replaced_by", "reason"],
        "additionalProperties": False,
    }


def reconcile_schema(neighbour_ids: Sequence[str] | None = None) -> dict[str, Any]:
    """The online decisions' JSON schema; with ids, ``id`` is limited to them (sent schema)."""
    ident = {"type": "string", "enum": list(neighbour_ids)} if neighbour_ids else {"type": "string"}
    item = {
        "type": "object",
        "properties": {
            "id": ident,
            "action": _ACTION,
            "new_memory": {"type": "string"},
            "reason": {"type": "string"},
        },
        "required": ["id", "action", "new_memory", "reason"],
        "additionalProperties": False,
    }
    return {
        "title": "lightmem_reconcile",
        "type": "object",
        "properties": {"decisions": {"type": "array", "items": item}},
        "required": ["decisions"],
        "additionalProperties": False,
    }


UPDATE_SCHEMA: dict[str, Any] = update_schema()
RECONCILE_SCHEMA: dict[str, Any] = reconcile_schema()

UPDATE_FORMAT = """\
Answer with one JSON object and nothing else:
{"action": "update" or "delete" or "ignore", "new_memory": "the merged memory if the action is \
update, else empty", "replaced_by": "the id of the newer memory that replaces it if the action is \
delete, else empty", "reason": "a few words on why"}"""

RECONCILE_FORMAT = """\
Answer with one JSON object and nothing else:
{"decisions": [{"id": "s1", "action": "update" or "delete", "new_memory": "the merged memory if \
the action is update, else empty", "reason": "a few words on why"}]}
List only the stored memories that are updated or deleted; if none is, answer {"decisions": []}."""


def _text(value: Any) -> str:
    return " ".join(str(value or "").split())


def _short(value: Any) -> str:
    return str(value or "").strip().strip("[]()").strip().lower()


def _update_problems(value: Mapping[str, Any], path: str = "$") -> list[str]:
    if value.get("action") == "update" and not _text(value.get("new_memory")):
        return [f"{path}.new_memory: an update needs the merged memory text"]
    return []


def _messages(prompts: Prompts, name: str, **values: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": prompts.system},
        {"role": "user", "content": prompts.render(name, **values)},
    ]


def decide_update(
    llm: Any,
    target: MemoryEntry,
    candidates: Sequence[tuple[MemoryEntry, float]],
    *,
    prompts: Prompts | None = None,
    max_attempts: int = 3,
    max_tokens: int | None = None,
) -> UpdateDecision:
    """Ask ``llm`` what the newer ``candidates`` do to the older ``target`` (one call + retries).

    With no candidates, nothing is asked and the decision is ``ignore``.
    """
    if not candidates:
        return UpdateDecision("ignore", target.id, reason="no newer candidates")
    prompts = prompts or Prompts()
    shown = {f"n{k}": entry for k, (entry, _s) in enumerate(candidates, start=1)}
    lines = [_line(f"n{k}", e, s) for k, (e, s) in enumerate(candidates, start=1)]
    request = _messages(
        prompts,
        "update",
        target=_line("old", target),
        candidates="\n".join(lines),
        output_format=UPDATE_FORMAT,
    )
    try:
        value = ask_json(
            llm,
            request,
            UPDATE_SCHEMA,
            prompts=prompts,
            check=_update_problems,
            max_attempts=max_attempts,
            max_tokens=max_tokens,
            what=f"update decision for entry {target.id}",
            request_schema=update_schema(list(shown)),
        ).value
    except StructuredOutputError as exc:
        if exc.value is None:
            raise
        log.warning("update decision for %s: %s; keeping the entry as is", target.id, exc)
        return UpdateDecision(
            "ignore", target.id, reason=f"no valid decision: {excerpt(exc.problems[0], 120)}"
        )
    action = value["action"]
    reason = _text(value.get("reason"))
    if action == "update":
        return UpdateDecision("update", target.id, _text(value["new_memory"]), reason=reason)
    if action == "delete":
        named = shown.get(_short(value.get("replaced_by")))
        replaced_by = named.id if named is not None else None
        return UpdateDecision("delete", target.id, replaced_by=replaced_by, reason=reason)
    return UpdateDecision("ignore", target.id, reason=reason)


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
    """Ask ``llm`` which stored ``neighbours`` a new fact updates or supersedes (one call +
    retries). With no neighbours, nothing is asked."""
    if not neighbours:
        return []
    prompts = prompts or Prompts()
    shown = {f"s{k}": entry for k, (entry, _s) in enumerate(neighbours, start=1)}
    lines = [_line(f"s{k}", e, s) for k, (e, s) in enumerate(neighbours, start=1)]
    fact = f"[new] {_time(fact_time_stamp)}: {' '.join(fact_text.split())}"
    request = _messages(
        prompts,
        "reconcile",
        fact=fact,
        neighbours="\n".join(lines),
        output_format=RECONCILE_FORMAT,
    )

    def check(value: Mapping[str, Any]) -> list[str]:
        problems = []
        for k, item in enumerate(value.get("decisions") or []):
            problems += _update_problems(item, f"$.decisions[{k}]")
        return problems

    try:
        items = ask_json(
            llm,
            request,
            RECONCILE_SCHEMA,
            prompts=prompts,
            check=check,
            max_attempts=max_attempts,
            max_tokens=max_tokens,
            what="online update",
            request_schema=reconcile_schema(list(shown)),
        ).value["decisions"]
    except StructuredOutputError as exc:
        if not isinstance(exc.value, Mapping):
            raise
        log.warning("online update: %s; keeping only its valid decisions", exc)
        items = exc.value.get("decisions")
        items = [i for i in items if isinstance(i, Mapping)] if isinstance(items, list) else []
    chosen: dict[str, UpdateDecision] = {}
    for item in items:
        entry = shown.get(_short(item.get("id")))
        action = item.get("action")
        if entry is None or entry.id in chosen or action not in ("update", "delete"):
            continue
        reason = _text(item.get("reason"))
        if action == "update":
            new_memory = _text(item.get("new_memory"))
            if not new_memory:
                continue
            chosen[entry.id] = UpdateDecision("update", entry.id, new_memory, reason=reason)
        else:
            chosen[entry.id] = UpdateDecision("delete", entry.id, reason=reason)
    order = {entry.id: k for k, entry in enumerate(shown.values())}
    return sorted(chosen.values(), key=lambda d: order[d.target_id])
