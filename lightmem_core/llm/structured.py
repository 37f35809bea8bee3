"""Structured output that survives real models: repair, validate, ask again.

API::

    parse_json(raw, schema=None) -> Any            # repair + pick the value that fits schema
    conform(value, schema) -> Any                  # safe coercions toward the schema
    validate(value, schema, path="$") -> list[str] # problems, "" paths like $.facts[2].sources
    ask_json(llm, messages, schema, *, prompts=None, check=None, max_attempts=3,
             max_tokens=None, what="answer", request_schema=None) -> StructuredReply
    StructuredOutputError(ExtractionError)          # .raw .value .problems .attempts

**Repair** (:func:`parse_json`), tried in this order until a value fits the schema: the reply
as is; the body of a Markdown code fence (```` ```json ````); the first balanced ``{...}`` or
``[...]`` in the text, ignoring prose before and after it. Within that span, text that is not
strict JSON is relaxed where it cannot change meaning: single-quoted strings become
double-quoted, trailing commas are dropped, ``True``/``False``/``None`` become JSON literals.
A reply cut off mid-way (the model hit its token limit) is closed at the last complete list
item or object member (or right after an opening bracket, leaving that list empty), trying
shorter cuts until the result fits the schema: complete items are kept, the partial one is
dropped, and required list properties the reply never reached are added empty. A reply that
is complete but malformed is not cut.

**Validation** (:func:`validate`) covers the subset of JSON Schema LightMem uses: ``type``
(one or a list), ``properties``, ``required``, ``additionalProperties`` (``false`` only),
``items``, ``enum``, ``minimum``, ``maximum``, ``minItems``, ``maxItems``, ``minLength``. Other
keywords are ignored. Before validating, :func:`conform` applies coercions that small models
need and that cannot change meaning: a numeric string for a number, a number for a string,
``null`` for a string becomes ``""``, a lone value for an array becomes a one-item array, an
enum value in other letter case, properties the schema forbids are dropped, and a bare list
for an object whose only required property is that list is wrapped.

**Cut answers are never accepted**: a reply the backend reports as cut at its token limit
(``finish_reason: "length"``), or one that could only be parsed by closing it early, is an
incomplete answer. :func:`ask_json` either treats it as unusable and asks again with the
feedback "answer more briefly" (``on_truncated="retry"``, the default) or raises
:class:`TruncatedReplyError` at once (``on_truncated="raise"``) so the caller can split the work
or ask with more room; the parsed items it did hold are never returned as the answer.

**Retries** (:func:`ask_json`): up to ``max_attempts`` calls. After an unusable reply the next
call repeats the original messages plus one feedback turn (the rejected reply if it is short,
and the ``retry`` prompt with the problems), so the feedback never accumulates. Transport errors
from the backend are not caught here: the backend retries those itself. After the last attempt
:class:`StructuredOutputError` is raised with an excerpt of the last reply (anything looking like
an API key is masked).
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import attrs
from lightmem_hookspecs import Completion

from ..errors import ExtractionError, TruncatedAnswerError
from .prompts import Prompts

log = logging.getLogger("lightmem")

#: How many start positions and truncation cuts :func:`parse_json` tries at most.
MAX_STARTS = 20
MAX_CUTS = 200
#: A rejected reply longer than this is not echoed back in the retry turn.
ECHO_LIMIT = 2000

_FENCE = re.compile(r"```[ \t]*(?:json|JSON|javascript|js)?[ \t]*\r?\n?(.*?)(?:```|\Z)", re.S)
_WORDS = {"True": "true", "False": "false", "None": "null"}
_SECRET = re.compile(r"(sk-[A-Za-z0-9_\-]{6,}|(?i:bearer)\s+\S+|(?i:api[_-]?key)\s*[=:]\s*\S+)")


class JSONRepairError(ValueError):
    """No JSON value could be recovered from a reply."""


class StructuredOutputError(ExtractionError):
    """The memory manager gave no usable answer within the attempt bound.

    ``raw`` is the last reply, ``value`` the last parsed value (``None`` if none parsed),
    ``problems`` the validation problems of the last reply, ``attempts`` the calls made.
    """

    def __init__(
        self,
        message: str,
        *,
        raw: str = "",
        value: Any = None,
        problems: Sequence[str] = (),
        attempts: int = 0,
    ) -> None:
        super().__init__(message)
        self.raw = raw
        self.value = value
        self.problems = list(problems)
        self.attempts = attempts


class TruncatedReplyError(StructuredOutputError, TruncatedAnswerError):
    """The reply was cut at the token limit (or could only be parsed by closing it early).

    ``completion_tokens`` is how many tokens the cut reply used (the limit it ran into).
    """

    def __init__(self, message: str, *, completion_tokens: int = 0, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.completion_tokens = completion_tokens


@attrs.frozen
class StructuredReply:
    """A validated answer. ``repaired`` says how the reply had to be fixed (``None``: not)."""

    value: Any
    raw: str
    attempts: int
    completion: Completion
    repaired: str | None = None


# ---------------------------------------------------------------------------------------------
# Repair
# ---------------------------------------------------------------------------------------------


def _loads(text: str) -> Any:
    return json.loads(text, strict=False, parse_constant=lambda _c: None)


def _read_string(text: str, i: int) -> tuple[str | None, int]:
    """Read the string starting at ``text[i]``; return it as JSON text, or None if unclosed."""
    quote = text[i]
    j = i + 1
    buf: list[str] = []
    n = len(text)
    while j < n:
        ch = text[j]
        if ch == "\\":
            if j + 1 >= n:
                return None, n
            nxt = text[j + 1]
            buf.append("'" if quote == "'" and nxt == "'" else ch + nxt)
            j += 2
            continue
        if ch == quote:
            if quote == '"':
                return text[i : j + 1], j + 1
            return '"' + "".join(buf) + '"', j + 1
        buf.append('\\"' if quote == "'" and ch == '"' else ch)
        j += 1
    return None, n


@attrs.define
class _Scan:
    out: str
    state: str  # "complete" | "truncated" | "malformed"
    cuts: list[tuple[int, str]]


def _scan(text: str, start: int) -> _Scan:
    """Copy the JSON value starting at ``text[start]``, relaxing safe deviations on the way,
    and note every place where it could be closed early with all items before it complete."""
    out: list[str] = []
    size = 0
    stack: list[str] = []
    cuts: list[tuple[int, str]] = []
    i, n = start, len(text)

    def emit(piece: str) -> None:
        nonlocal size
        out.append(piece)
        size += len(piece)

    while i < n:
        c = text[i]
        if c in "\"'":
            piece, i = _read_string(text, i)
            if piece is None:
                return _Scan("".join(out), "truncated", cuts)
            emit(piece)
        elif c in "{[":
            stack.append("}" if c == "{" else "]")
            emit(c)
            i += 1
            cuts.append((size, "".join(reversed(stack))))
        elif c in "}]":
            if not stack or stack[-1] != c:
                return _Scan("".join(out), "malformed", cuts)
            stack.pop()
            emit(c)
            i += 1
            if not stack:
                return _Scan("".join(out), "complete", cuts)
            cuts.append((size, "".join(reversed(stack))))
        elif c == ",":
            j = i + 1
            while j < n and text[j].isspace():
                j += 1
            if j < n and text[j] in "}]":
                i += 1  # a trailing comma
                continue
            cuts.append((size, "".join(reversed(stack))))
            emit(c)
            i += 1
        elif c.isalpha() or c == "_":
            j = i
            while j < n and (text[j].isalnum() or text[j] == "_"):
                j += 1
            word = text[i:j]
            emit(_WORDS.get(word, word))
            i = j
        else:
            emit(c)
            i += 1
    return _Scan("".join(out), "truncated", cuts)


def _texts(raw: str) -> list[str]:
    bodies = [m.group(1) for m in _FENCE.finditer(raw) if m.group(1).strip()]
    return [*bodies, raw]


_FAILED = object()


def _try_loads(text: str) -> Any:
    try:
        return _loads(text)
    except ValueError:
        return _FAILED


def _candidates(raw: str) -> Iterator[tuple[Any, str | None]]:
    """Parsed values in order of preference, each with how it was repaired."""
    texts = _texts(raw.lstrip("\ufeff"))
    for k, text in enumerate(texts):
        value = _try_loads(text.strip())
        if value is not _FAILED:
            yield value, ("fenced" if k < len(texts) - 1 else None)
    for text in texts:
        starts = [m.start() for m in re.finditer(r"[{\[]", text)][:MAX_STARTS]
        for start in starts:
            scan = _scan(text, start)
            if scan.state == "complete":
                value = _try_loads(scan.out)
                if value is not _FAILED:
                    yield value, "extracted"
            elif scan.state == "truncated":
                for pos, closers in list(reversed(scan.cuts))[:MAX_CUTS]:
                    value = _try_loads(scan.out[:pos] + closers)
                    if value is not _FAILED:
                        yield value, "truncated"


def _fill_arrays(value: Any, schema: Mapping[str, Any]) -> Any:
    """Add the required array properties a truncated reply never reached, empty."""
    if isinstance(value, dict) and "object" in _types(schema):
        props = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in value and "array" in _types(props.get(key, {})):
                value[key] = []
        for key, item in value.items():
            if key in props:
                _fill_arrays(item, props[key])
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for item in value:
            _fill_arrays(item, schema["items"])
    return value


def _parse(raw: str, schema: Mapping[str, Any] | None) -> tuple[Any, str | None]:
    first: tuple[Any, str | None] | None = None
    for value, how in _candidates(raw):
        value = conform(value, schema) if schema is not None else value
        if how == "truncated" and schema is not None:
            value = _fill_arrays(value, schema)
        if schema is None or not validate(value, schema):
            return value, how
        if first is None:
            first = (value, how)
    if first is not None:
        return first
    if not raw.strip():
        raise JSONRepairError("the reply was empty")
    raise JSONRepairError("the reply contains no JSON value")


def parse_json(raw: str, schema: Mapping[str, Any] | None = None) -> Any:
    """The JSON value in ``raw``, repaired if needed (see the module docs).

    With a ``schema``, the first candidate that fits it wins (conformed, see :func:`conform`);
    if none fits, the first that parsed is returned and :func:`validate` will say why.
    Raises :class:`JSONRepairError` when nothing parses.
    """
    return _parse(raw, schema)[0]


# ---------------------------------------------------------------------------------------------
# Schema subset: conform and validate
# ---------------------------------------------------------------------------------------------


def _types(schema: Mapping[str, Any]) -> list[str]:
    t = schema.get("type")
    if t is None:
        return []
    return [t] if isinstance(t, str) else list(t)


def _is_type(value: Any, name: str) -> bool:
    if name == "object":
        return isinstance(value, dict)
    if name == "array":
        return isinstance(value, list)
    if name == "string":
        return isinstance(value, str)
    if name == "boolean":
        return isinstance(value, bool)
    if name == "null":
        return value is None
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return True


def conform(value: Any, schema: Mapping[str, Any] | None) -> Any:
    """Apply coercions that cannot change meaning so ``value`` fits ``schema`` (see module)."""
    if not schema:
        return value
    types = _types(schema)
    if types and not any(_is_type(value, t) for t in types):
        value = _coerce(value, types, schema)
    if isinstance(value, dict) and "object" in types:
        props: Mapping[str, Any] = schema.get("properties", {})
        result = {}
        for key, item in value.items():
            if key in props:
                result[key] = conform(item, props[key])
            elif schema.get("additionalProperties", True) is not False:
                result[key] = item
        return result
    if isinstance(value, list) and "array" in types:
        items = schema.get("items")
        return [conform(v, items) for v in value] if isinstance(items, Mapping) else value
    if isinstance(value, str) and "enum" in schema and value not in schema["enum"]:
        folded = {str(e).strip().lower(): e for e in schema["enum"]}
        return folded.get(value.strip().lower(), value)
    return value


def _coerce(value: Any, types: list[str], schema: Mapping[str, Any]) -> Any:
    if "number" in types or "integer" in types:
        number: float | None = None
        if isinstance(value, str):
            try:
                number = float(value.strip().rstrip("%"))
            except ValueError:
                number = None
        if number is not None and math.isfinite(number):
            if "integer" in types and number.is_integer():
                return int(number)
            if "number" in types:
                return number
    if "string" in types:
        if value is None:
            return ""
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
    if "array" in types and not isinstance(value, list):
        if isinstance(value, dict):
            lists = [v for v in value.values() if isinstance(v, list)]
            if len(value) == 1 and len(lists) == 1:
                return lists[0]
            return value
        if value is None:
            return value
        return [value]
    if "object" in types and isinstance(value, list):
        required = schema.get("required", [])
        props = schema.get("properties", {})
        if len(required) == 1 and "array" in _types(props.get(required[0], {})):
            return {required[0]: value}
    return value


def validate(value: Any, schema: Mapping[str, Any], path: str = "$") -> list[str]:
    """Problems of ``value`` against ``schema`` (the subset in the module docs), as
    ``"<path>: <problem>"`` strings; an empty list means it fits."""
    problems: list[str] = []
    types = _types(schema)
    if types and not any(_is_type(value, t) for t in types):
        return [f"{path}: expected {' or '.join(types)}, got {_kind(value)}"]
    if "enum" in schema and value not in schema["enum"]:
        choices = ", ".join(json.dumps(e) for e in schema["enum"])
        problems.append(f"{path}: {json.dumps(value)} is not one of {choices}")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in value:
                problems.append(f"{path}: missing required property {key!r}")
        for key, item in value.items():
            if key in props:
                problems.extend(validate(item, props[key], f"{path}.{key}"))
            elif schema.get("additionalProperties", True) is False:
                problems.append(f"{path}: unexpected property {key!r}")
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            problems.append(f"{path}: needs at least {schema['minItems']} item(s)")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            problems.append(f"{path}: allows at most {schema['maxItems']} item(s)")
        items = schema.get("items")
        if isinstance(items, Mapping):
            for k, item in enumerate(value):
                problems.extend(validate(item, items, f"{path}[{k}]"))
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            problems.append(f"{path}: {value} is below the minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            problems.append(f"{path}: {value} is above the maximum {schema['maximum']}")
    if isinstance(value, str) and "minLength" in schema and len(value) < schema["minLength"]:
        problems.append(f"{path}: must have at least {schema['minLength']} character(s)")
    return problems


def _kind(value: Any) -> str:
    for name in ("null", "boolean", "integer", "number", "string", "array", "object"):
        if _is_type(value, name):
            return name
    return type(value).__name__


# ---------------------------------------------------------------------------------------------
# Ask, validate, retry
# ---------------------------------------------------------------------------------------------


def excerpt(text: str, limit: int = 300) -> str:
    """A short, single-line view of ``text`` with anything looking like a secret masked."""
    text = _SECRET.sub("[redacted]", text)
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    head = limit * 2 // 3
    return f"{text[:head]} … {text[-(limit - head) :]}"


def ask_json(
    llm: Any,
    messages: Sequence[Mapping[str, str]],
    schema: Mapping[str, Any],
    *,
    prompts: Prompts | None = None,
    check: Callable[[Any], list[str]] | None = None,
    max_attempts: int = 3,
    max_tokens: int | None = None,
    what: str = "answer",
    request_schema: Mapping[str, Any] | None = None,
    on_truncated: str = "retry",
) -> StructuredReply:
    """Ask ``llm`` for JSON fitting ``schema``; repair, validate, and ask again when unusable.

    ``check(value)`` may add problems the schema cannot express (returns ``"$.path: ..."``
    strings); a value with problems counts as unusable. ``request_schema`` is what the backend is
    sent when it should be stricter than what is accepted (e.g. an ``enum`` of the ids shown,
    which lets a grammar-constrained local model emit only those, while a remote model's
    ``[M3]`` is still accepted and normalised by the caller); default: ``schema``. With
    ``prompts.stable_schema`` (a KV cache on an endpoint that caches the schema with the
    prompt) ``schema`` itself is sent, the same in every call of one kind. Raises
    :class:`StructuredOutputError` after ``max_attempts`` unusable replies. A reply cut at the
    token limit is never accepted: with ``on_truncated="raise"`` it raises
    :class:`TruncatedReplyError` at once, with ``"retry"`` it counts as unusable. Errors the
    backend raises propagate unchanged.
    """
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
    if on_truncated not in ("retry", "raise"):
        raise ValueError(f"on_truncated must be 'retry' or 'raise', got {on_truncated!r}")
    prompts = prompts or Prompts()
    base = [dict(m) for m in messages]
    request = base
    raw, value, problems = "", None, ["no reply"]
    for attempt in range(1, max_attempts + 1):
        sent = schema if prompts.stable_schema else (request_schema or schema)
        completion = llm.complete(request, json_schema=sent, max_tokens=max_tokens)
        raw = completion.text or ""
        value, repaired = None, None
        try:
            value, repaired = _parse(raw, schema)
        except JSONRepairError as exc:
            problems = [str(exc)]
        else:
            problems = validate(value, schema)
            if not problems and check is not None:
                problems = list(check(value))
        if completion.finish_reason == "length" or repaired == "truncated":
            if on_truncated == "raise":
                raise TruncatedReplyError(
                    f"{what}: the answer was cut at the token limit after "
                    f"{completion.completion_tokens} tokens (finish_reason "
                    f"{completion.finish_reason!r}); nothing of it is used",
                    raw=raw,
                    value=value,
                    problems=["the answer was cut at the token limit"],
                    attempts=attempt,
                    completion_tokens=completion.completion_tokens,
                )
            problems = ["it was cut off at the length limit: answer more briefly", *problems]
        else:
            if not problems:
                if repaired:
                    log.debug("%s: reply repaired (%s) on attempt %d", what, repaired, attempt)
                return StructuredReply(value, raw, attempt, completion, repaired)
        log.info(
            "%s: unusable reply on attempt %d/%d: %s", what, attempt, max_attempts, problems[0]
        )
        error = "; ".join(problems[:5]) + (f" (and {len(problems) - 5} more)" * (len(problems) > 5))
        feedback: list[dict[str, str]] = []
        if raw.strip() and len(raw) <= ECHO_LIMIT:
            feedback.append({"role": "assistant", "content": raw})
        feedback.append({"role": "user", "content": prompts.render("retry", error=error)})
        request = base + feedback
    model = getattr(llm, "model_name", "?")
    raise StructuredOutputError(
        f"{what}: memory manager {model!r} gave no usable JSON in {max_attempts} attempt(s); "
        f"last problem: {'; '.join(problems[:3])}; last reply (excerpt): {excerpt(raw)!r}",
        raw=raw,
        value=value,
        problems=problems,
        attempts=max_attempts,
    )
