"""Message normalization: validation, time stamps, stable ids, token counting."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

from lightmem_hookspecs import Message, Scope

from .errors import InputError

ROLES = ("user", "assistant", "system", "tool")
_KNOWN_KEYS = {
    "id",
    "message_id",
    "role",
    "content",
    "time_stamp",
    "timestamp",
    "speaker_id",
    "speaker_name",
    "metadata",
}

_LONGMEMEVAL = re.compile(
    r"^\s*(\d{4})/(\d{1,2})/(\d{1,2})\s*(?:\([A-Za-z]{3}\))?\s*(\d{1,2}):(\d{2})(?::(\d{2}))?\s*$"
)
_LOCOMO = re.compile(
    r"^\s*(\d{1,2}):(\d{2})\s*([ap]m)\s+on\s+(\d{1,2})\s+([A-Za-z]+),?\s+(\d{4})\s*$", re.I
)
_MONTHS = {
    m: i + 1
    for i, m in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    )
}
_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def count_tokens(text: str) -> int:
    """Token count used by the buffers: words and punctuation marks (no model needed).

    Roughly 0.75x the count of a BPE tokenizer such as cl100k for English text.
    """
    return len(_TOKEN.findall(text))


def parse_time(value: Any, *, where: str = "time_stamp") -> dt.datetime | None:
    """Parse ISO 8601, LongMemEval (``2023/05/20 (Sat) 02:21``) or LoCoMo time stamps.

    Aware datetimes are converted to UTC and stored naive (UTC); naive ones are kept as given.
    """
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, dt.date):
        parsed = dt.datetime(value.year, value.month, value.day)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        parsed = dt.datetime.fromtimestamp(value, dt.UTC)
    elif isinstance(value, str):
        parsed = _parse_time_text(value, where)
    else:
        raise InputError(
            f"{where}: expected a date-time string or datetime, got {type(value).__name__} "
            f"{value!r}"
        )
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
    return parsed


def _parse_time_text(text: str, where: str) -> dt.datetime:
    m = _LONGMEMEVAL.match(text)
    if m:
        y, mo, d, h, mi, s = (int(g) if g else 0 for g in m.groups())
        return dt.datetime(y, mo, d, h, mi, s)
    m = _LOCOMO.match(text)
    if m:
        hh, mm, ampm, day, month, year = m.groups()
        month_no = _MONTHS.get(month[:3].lower())
        if month_no is not None:
            hour = int(hh) % 12 + (12 if ampm.lower() == "pm" else 0)
            return dt.datetime(int(year), month_no, int(day), hour, int(mm))
    try:
        return dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        pass
    raise InputError(
        f"{where}: cannot parse {text!r} as a time stamp. Use ISO 8601 "
        f"('2023-05-20T02:21:00'), LongMemEval's '2023/05/20 (Sat) 02:21' or LoCoMo's "
        f"'1:56 pm on 8 May, 2023'."
    )


def message_id(
    scope: Scope, role: str, content: str, time_stamp: dt.datetime | None, pos: int
) -> str:
    key = "\x1f".join(
        [
            scope.user_id or "",
            scope.agent_id or "",
            scope.run_id or "",
            role,
            content,
            time_stamp.isoformat() if time_stamp else "",
            str(pos),
        ]
    )
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:24]


def normalize_messages(raw: Any, scope: Scope) -> list[Message]:
    """Validate and normalize what ``add_memory`` was given.

    Accepts one message mapping or a list of them. Errors name the message index and key.
    Nothing is stored when any message is invalid.
    """
    if isinstance(raw, Mapping):
        raw = [raw]
    if isinstance(raw, str) or not isinstance(raw, Sequence):
        raise InputError(
            f"messages: expected a list of message dicts (role, content, time_stamp), got "
            f"{type(raw).__name__}"
        )
    out: list[Message] = []
    for i, item in enumerate(raw):
        where = f"messages[{i}]"
        if not isinstance(item, Mapping):
            raise InputError(f"{where}: expected a dict with role and content, got {item!r}")
        role = item.get("role")
        if role not in ROLES:
            raise InputError(f"{where}.role: expected one of {', '.join(ROLES)}, got {role!r}")
        content = item.get("content")
        if not isinstance(content, str) or not content.strip():
            raise InputError(f"{where}.content: expected a non-empty string, got {content!r}")
        ts = parse_time(item.get("time_stamp", item.get("timestamp")), where=f"{where}.time_stamp")
        for key in ("speaker_id", "speaker_name"):
            if item.get(key) is not None and not isinstance(item.get(key), str | int):
                raise InputError(f"{where}.{key}: expected a string, got {item.get(key)!r}")
        metadata = dict(item.get("metadata") or {})
        metadata.update({k: v for k, v in item.items() if k not in _KNOWN_KEYS})
        given_id = item.get("id", item.get("message_id"))
        if given_id is not None and not isinstance(given_id, str | int):
            raise InputError(f"{where}.id: expected a string, got {given_id!r}")
        mid = str(given_id) if given_id is not None else message_id(scope, role, content, ts, i)
        speaker_id = item.get("speaker_id")
        speaker_name = item.get("speaker_name")
        out.append(
            Message(
                id=mid,
                role=role,
                content=content.strip(),
                original_content=content,
                time_stamp=ts,
                speaker_id=str(speaker_id) if speaker_id is not None else None,
                speaker_name=str(speaker_name) if speaker_name is not None else None,
                scope=scope,
                metadata=metadata,
            )
        )
    return out
