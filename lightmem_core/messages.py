"""Message normalization: validation, time stamps, stable ids, token counting."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from lightmem_hookspecs import Message, Scope

from .errors import InputError
from .scope import check_text, normalize_scope

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

#: How deeply message metadata may nest (objects and lists).
MAX_METADATA_DEPTH = 32
#: The longest message id accepted (characters).
MAX_ID_LENGTH = 1000


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
    try:
        return _parse_time(value, where)
    except InputError:
        raise
    except (ValueError, OverflowError, OSError, TypeError) as exc:
        raise InputError(
            f"{where}: {value!r} is not a usable time stamp ({exc}); give a date between the "
            f"years 1 and 9999, e.g. '2023-05-20T02:21:00'"
        ) from exc


def _parse_time(value: Any, where: str) -> dt.datetime:
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, dt.date):
        parsed = dt.datetime(value.year, value.month, value.day)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise InputError(f"{where}: expected a finite epoch time, got {value!r}")
        parsed = dt.datetime.fromtimestamp(value, dt.UTC)
    elif isinstance(value, str):
        parsed = _parse_time_text(check_text(value, where), where)
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
    """The id of a message the caller gave none: a hash of a JSON encoding of its scope, role,
    content, time stamp and position, so values holding any character cannot collide."""
    key = json.dumps(
        [
            scope.user_id,
            scope.agent_id,
            scope.run_id,
            role,
            content,
            time_stamp.isoformat() if time_stamp else None,
            pos,
        ],
        ensure_ascii=False,
    )
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:24]


def check_metadata(value: Any, where: str) -> dict[str, Any]:
    """Metadata must be a JSON object: string keys, JSON values, nesting at most
    :data:`MAX_METADATA_DEPTH` deep, text encodable as UTF-8. Returns a plain copy."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InputError(f"{where}: expected a JSON object (a dict), got {type(value).__name__}")
    stack: list[tuple[Any, str, int]] = [(value, where, 1)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, Mapping | list | tuple) and depth > MAX_METADATA_DEPTH:
            raise InputError(f"{path}: metadata nests deeper than {MAX_METADATA_DEPTH} levels")
        if isinstance(item, Mapping):
            for key, sub in item.items():
                if not isinstance(key, str):
                    raise InputError(f"{path}: keys must be strings, got {key!r}")
                check_text(key, f"{path} key")
                stack.append((sub, f"{path}.{key}", depth + 1))
        elif isinstance(item, list | tuple):
            stack.extend((sub, f"{path}[{i}]", depth + 1) for i, sub in enumerate(item))
        elif isinstance(item, str):
            check_text(item, path)
        elif isinstance(item, float) and not math.isfinite(item):
            raise InputError(f"{path}: {item!r} is not a JSON number")
        elif item is not None and not isinstance(item, bool | int | float):
            raise InputError(
                f"{path}: {type(item).__name__} is not a JSON value; use strings, numbers, "
                f"booleans, null, lists and objects"
            )
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError, OverflowError) as exc:  # pragma: no cover - checked above
        raise InputError(f"{where}: not a JSON object: {exc}") from exc


def _message_id_value(value: Any, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InputError(f"{where}: expected a string, got {type(value).__name__} {value!r}")
    text = str(value)
    if not text.strip():
        raise InputError(f"{where}: expected a non-empty string")
    if len(text) > MAX_ID_LENGTH:
        raise InputError(f"{where}: at most {MAX_ID_LENGTH} characters, got {len(text)}")
    return check_text(text, where)


def _optional_text(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InputError(f"{where}: expected a string, got {type(value).__name__} {value!r}")
    return check_text(str(value), where)


def normalize_messages(
    raw: Any, scope: Scope, *, max_chars: int | None = None, truncate: bool = False
) -> list[Message]:
    """Validate and normalize what ``add_memory`` was given.

    Accepts one message mapping or a list of them. Errors name the message index and key.
    A content longer than ``max_chars`` characters is refused, or with ``truncate`` cut to
    that length (its metadata keeps ``truncated_from``, the original length; its id is that
    of the whole content, so re-sending it adds nothing).
    Nothing is stored when any message is invalid. Message ids are unique within their scope:
    two messages of one call with the same id are refused; an id already journaled in the
    same scope is skipped later (re-sending is idempotent), in another scope it is a different
    message.
    """
    scope = normalize_scope(scope)
    if isinstance(raw, Mapping):
        raw = [raw]
    if isinstance(raw, str | bytes) or not isinstance(raw, Sequence):
        raise InputError(
            f"messages: expected a list of message dicts (role, content, time_stamp), got "
            f"{type(raw).__name__}"
        )
    out: list[Message] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(raw):
        where = f"messages[{i}]"
        if not isinstance(item, Mapping):
            raise InputError(
                f"{where}: expected a dict with role and content, got {type(item).__name__}"
            )
        role = item.get("role")
        if not isinstance(role, str) or role not in ROLES:
            raise InputError(f"{where}.role: expected one of {', '.join(ROLES)}, got {role!r}")
        content = item.get("content")
        if not isinstance(content, str) or not content.strip():
            raise InputError(
                f"{where}.content: expected a non-empty string, got {type(content).__name__}"
            )
        check_text(content, f"{where}.content")
        text, original = content.strip(), content
        oversize = max_chars is not None and len(text) > max_chars
        if oversize and not truncate:
            raise InputError(
                f"{where}.content: {len(text):,} characters, over the limit of {max_chars:,} "
                f"(max_message_chars); split the message, raise max_message_chars, or set "
                f"truncate_long_messages: true to keep its first {max_chars:,} characters"
            )
        ts = parse_time(item.get("time_stamp", item.get("timestamp")), where=f"{where}.time_stamp")
        speaker_id = _optional_text(item.get("speaker_id"), f"{where}.speaker_id")
        speaker_name = _optional_text(item.get("speaker_name"), f"{where}.speaker_name")
        extra = {k: v for k, v in item.items() if k not in _KNOWN_KEYS}
        for key in extra:
            if not isinstance(key, str):
                raise InputError(f"{where}: keys must be strings, got {key!r}")
        metadata = check_metadata(item.get("metadata"), f"{where}.metadata")
        metadata.update(check_metadata(extra, where))
        given_id = item.get("id", item.get("message_id"))
        if given_id is not None:
            mid = _message_id_value(given_id, f"{where}.id")
        else:
            mid = message_id(scope, role, content, ts, i)
        if mid in seen:
            raise InputError(
                f"{where}.id: {mid!r} is also the id of messages[{seen[mid]}]; message ids must "
                f"be unique within a scope"
            )
        seen[mid] = i
        if oversize:
            metadata["truncated_from"] = len(text)
            text = original = text[:max_chars]
        out.append(
            Message(
                id=mid,
                role=role,
                content=text,
                original_content=original,
                time_stamp=ts,
                speaker_id=speaker_id,
                speaker_name=speaker_name,
                scope=scope,
                metadata=metadata,
            )
        )
    return out
