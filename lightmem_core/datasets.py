"""Loaders for conversation files: LoCoMo, LongMemEval, and plain lists of LightMem messages.

Every loader returns :class:`Conversation` objects whose sessions hold LightMem message dicts
(``role``, ``content``, ``time_stamp``, ``speaker_name``, ``speaker_id``, ``id``), ready for
``LightMemory.add_memory``, and whose questions name their evidence by those same message ids,
so the provenance of a retrieved memory maps straight back to a benchmark's evidence.

LoCoMo: both speakers are people, so every turn becomes a ``user`` message (``messages_use:
user_only``, the default, keeps both) with ``speaker_name`` set to who spoke and ``speaker_id``
to ``speaker_a`` / ``speaker_b``. A turn that shares an image gets its caption appended:
``"... [shares a photo: a dog on a beach]"``. Every turn of a session carries the session's date.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from .errors import InputError

FORMATS = ("locomo", "longmemeval", "messages")

_SESSION_KEY = re.compile(r"^session_(\d+)$")
_DIA_ID = re.compile(r"^D:?(\d+):0*(\d+)$")


@attrs.frozen
class Question:
    """A benchmark question with the message ids of its evidence."""

    id: str
    question: str
    answer: str | None
    category: int | str | None = None
    evidence: tuple[str, ...] = ()
    evidence_sessions: tuple[str, ...] = ()
    question_date: str | None = None
    metadata: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class Session:
    """One conversation session: LightMem message dicts, in order."""

    id: str
    date: str | None
    messages: tuple[dict[str, Any], ...]


@attrs.frozen
class Conversation:
    """One sample: its sessions (ingest them in order) and its questions."""

    sample_id: str
    format: str
    sessions: tuple[Session, ...]
    questions: tuple[Question, ...] = ()
    speakers: tuple[str, ...] = ()
    dropped_evidence: tuple[str, ...] = ()

    @property
    def messages(self) -> list[dict[str, Any]]:
        return [m for s in self.sessions for m in s.messages]


# ---------------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------------


def read_json_or_jsonl(path: str | Path) -> Any:
    """The parsed content of a ``.json`` file, or the list of objects of a ``.jsonl`` file."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such file")
    text = p.read_text(encoding="utf-8")
    if p.suffix.lower() == ".jsonl":
        items = []
        for n, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    items.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise InputError(f"{p}:{n}: invalid JSON: {exc.msg}") from None
        return items
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{p}:{exc.lineno}: invalid JSON: {exc.msg}") from None


def detect_format(data: Any) -> str:
    """``locomo``, ``longmemeval`` or ``messages`` for parsed file content; InputError otherwise."""
    if isinstance(data, list) and not data:
        return "messages"  # nothing to add
    first = data[0] if isinstance(data, list) else data
    if isinstance(first, Mapping):
        if "conversation" in first:
            return "locomo"
        if "haystack_sessions" in first:
            return "longmemeval"
        if "role" in first or "content" in first:
            return "messages"  # add_memory names what a message lacks
        if isinstance(first.get("sessions"), list) or isinstance(first.get("messages"), list):
            return "messages"
    if isinstance(first, list) and (not first or isinstance(first[0], Mapping)):
        return "messages"
    raise InputError(
        "cannot tell the file's format: expected a LoCoMo sample (with 'conversation'), a "
        "LongMemEval sample (with 'haystack_sessions'), or a list of messages (dicts with "
        "'role' and 'content')"
    )


def load_conversations(
    path: str | Path, *, format: str | None = None, samples: Iterable[str] | None = None
) -> list[Conversation]:
    """Load a LoCoMo, LongMemEval or message-list file (format detected unless given).

    ``samples`` keeps only the listed sample ids (LoCoMo ``sample_id``, LongMemEval
    ``question_id``), in file order; an id not in the file is an error.
    """
    data = read_json_or_jsonl(path)
    fmt = format or detect_format(data)
    if fmt not in FORMATS:
        raise InputError(f"format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    name = Path(path).stem
    if fmt == "locomo":
        items = data if isinstance(data, list) else [data]
        conversations = [locomo_conversation(s, where=f"{path}[{i}]") for i, s in enumerate(items)]
    elif fmt == "longmemeval":
        items = data if isinstance(data, list) else [data]
        conversations = [
            longmemeval_conversation(s, where=f"{path}[{i}]") for i, s in enumerate(items)
        ]
    else:
        conversations = [message_conversation(data, sample_id=name, where=str(path))]
    if samples is not None:
        wanted = [s.strip() for s in samples if s.strip()]
        by_id = {c.sample_id: c for c in conversations}
        missing = [s for s in wanted if s not in by_id]
        if missing:
            raise InputError(
                f"{path}: no sample(s) {', '.join(missing)}; the file has "
                f"{', '.join(list(by_id)[:20])}{' ...' if len(by_id) > 20 else ''}"
            )
        keep = set(wanted)
        conversations = [c for c in conversations if c.sample_id in keep]
    return conversations


def load_messages_file(
    path: str | Path, *, sample: str | None = None
) -> list[list[dict[str, Any]]]:
    """The sessions (lists of message dicts) of one conversation file, for ``lightmem add``.

    A file with several LoCoMo or LongMemEval samples needs ``sample`` to pick one.
    """
    conversations = load_conversations(path, samples=[sample] if sample else None)
    if len(conversations) != 1:
        ids = ", ".join(c.sample_id for c in conversations[:20])
        more = " ..." if len(conversations) > 20 else ""
        raise InputError(
            f"{path}: holds {len(conversations)} samples ({ids}{more}); choose one sample to add"
        )
    return [list(s.messages) for s in conversations[0].sessions]


# ---------------------------------------------------------------------------------------------
# LoCoMo
# ---------------------------------------------------------------------------------------------


def normalize_dia_id(raw: str) -> str | None:
    """``"D1:3"`` for LoCoMo dialogue ids, tolerating ``"D:1:3"`` and ``"D1:03"``; else None."""
    m = _DIA_ID.match(raw.strip())
    return f"D{int(m.group(1))}:{int(m.group(2))}" if m else None


def _split_evidence(evidence: Any) -> list[str]:
    if isinstance(evidence, str):
        evidence = [evidence]
    out: list[str] = []
    for item in evidence or ():
        out += [part for part in re.split(r"[;,\s]+", str(item)) if part]
    return out


def locomo_turn_text(turn: Mapping[str, Any]) -> str:
    """A turn's text, with the caption of a shared image appended."""
    text = str(turn.get("text") or "").strip()
    caption = str(turn.get("blip_caption") or "").strip()
    if caption:
        text = f"{text} [shares a photo: {caption}]".strip()
    return text


def locomo_conversation(sample: Mapping[str, Any], *, where: str = "sample") -> Conversation:
    """One LoCoMo sample as sessions of user messages plus its questions."""
    if not isinstance(sample, Mapping) or not isinstance(sample.get("conversation"), Mapping):
        raise InputError(f"{where}: expected a LoCoMo sample with a 'conversation' mapping")
    conv = sample["conversation"]
    sample_id = str(sample.get("sample_id") or where)
    speaker_ids = {}
    for key in ("speaker_a", "speaker_b"):
        if conv.get(key):
            speaker_ids[str(conv[key])] = key
    numbers = sorted(
        int(m.group(1)) for k in conv if (m := _SESSION_KEY.match(k)) and conv[k] is not None
    )
    sessions: list[Session] = []
    turn_ids: set[str] = set()
    for n in numbers:
        turns = conv[f"session_{n}"]
        if not isinstance(turns, list):
            raise InputError(f"{where}.conversation.session_{n}: expected a list of turns")
        date = conv.get(f"session_{n}_date_time")
        messages = []
        for t, turn in enumerate(turns):
            turn_where = f"{where}.conversation.session_{n}[{t}]"
            if not isinstance(turn, Mapping):
                raise InputError(f"{turn_where}: expected a turn mapping")
            text = locomo_turn_text(turn)
            if not text:
                continue
            dia_id = normalize_dia_id(str(turn.get("dia_id", ""))) or f"D{n}:{t + 1}"
            speaker = str(turn.get("speaker") or "")
            message: dict[str, Any] = {
                "id": f"{sample_id}:{dia_id}",
                "role": "user",
                "content": text,
                "time_stamp": date,
                "speaker_name": speaker or None,
                "speaker_id": speaker_ids.get(speaker, speaker or None),
            }
            messages.append(message)
            turn_ids.add(dia_id)
        if messages:
            sessions.append(Session(id=f"session_{n}", date=date, messages=tuple(messages)))
    questions = []
    dropped: list[str] = []
    for q, item in enumerate(sample.get("qa") or ()):
        evidence = []
        for raw in _split_evidence(item.get("evidence")):
            found = normalize_dia_id(raw)
            if found is not None and found in turn_ids:
                evidence.append(f"{sample_id}:{found}")
            else:
                dropped.append(f"qa[{q}]:{raw}")
        answer = item.get("answer", item.get("adversarial_answer"))
        questions.append(
            Question(
                id=f"{sample_id}:q{q}",
                question=str(item.get("question", "")),
                answer=None if answer is None else str(answer),
                category=item.get("category"),
                evidence=tuple(dict.fromkeys(evidence)),
            )
        )
    return Conversation(
        sample_id=sample_id,
        format="locomo",
        sessions=tuple(sessions),
        questions=tuple(questions),
        speakers=tuple(speaker_ids),
        dropped_evidence=tuple(dropped),
    )


# ---------------------------------------------------------------------------------------------
# LongMemEval
# ---------------------------------------------------------------------------------------------


def longmemeval_conversation(sample: Mapping[str, Any], *, where: str = "sample") -> Conversation:
    """One LongMemEval sample: its haystack sessions and its one question.

    Message ids are ``{question_id}:{session_id}:{turn}``. The question's evidence is the turns
    marked ``has_answer`` (when the file marks them), else every turn of the answer sessions.
    """
    sessions_raw = sample.get("haystack_sessions")
    if not isinstance(sessions_raw, list):
        raise InputError(f"{where}: expected a LongMemEval sample with 'haystack_sessions'")
    qid = str(sample.get("question_id") or where)
    dates = list(sample.get("haystack_dates") or [])
    session_ids = [str(s) for s in sample.get("haystack_session_ids") or []]
    answer_sessions = {str(s) for s in sample.get("answer_session_ids") or []}
    sessions: list[Session] = []
    marked: list[str] = []
    in_answer_sessions: list[str] = []
    for i, turns in enumerate(sessions_raw):
        sid = session_ids[i] if i < len(session_ids) else f"session_{i + 1}"
        date = dates[i] if i < len(dates) else None
        if not isinstance(turns, list):
            raise InputError(f"{where}.haystack_sessions[{i}]: expected a list of turns")
        messages = []
        for t, turn in enumerate(turns):
            if not isinstance(turn, Mapping):
                raise InputError(f"{where}.haystack_sessions[{i}][{t}]: expected a turn mapping")
            content = str(turn.get("content") or "").strip()
            if not content:
                continue
            mid = f"{qid}:{sid}:{t}"
            role = turn.get("role", "user")
            messages.append(
                {
                    "id": mid,
                    "role": role,
                    "content": content,
                    "time_stamp": date,
                    "speaker_id": role,
                }
            )
            if turn.get("has_answer"):
                marked.append(mid)
            if sid in answer_sessions:
                in_answer_sessions.append(mid)
        if messages:
            sessions.append(Session(id=sid, date=date, messages=tuple(messages)))
    answer = sample.get("answer")
    question = Question(
        id=qid,
        question=str(sample.get("question", "")),
        answer=None if answer is None else str(answer),
        category=sample.get("question_type"),
        evidence=tuple(marked or in_answer_sessions),
        evidence_sessions=tuple(sorted(answer_sessions)),
        question_date=sample.get("question_date"),
        metadata={"evidence_turns_marked": bool(marked)},
    )
    return Conversation(
        sample_id=qid, format="longmemeval", sessions=tuple(sessions), questions=(question,)
    )


# ---------------------------------------------------------------------------------------------
# Plain messages
# ---------------------------------------------------------------------------------------------


def _is_session(item: Mapping[str, Any]) -> bool:
    return isinstance(item.get("messages"), list) and "role" not in item


def message_conversation(
    data: Any, *, sample_id: str = "messages", where: str = "file"
) -> Conversation:
    """A list of message dicts, a list of such lists (sessions), or ``{"sessions": [...]}``.

    A session may be ``{"date": ..., "messages": [...]}``; its date fills in the ``time_stamp``
    of messages that have none. Messages are passed on as given: ``add_memory`` validates them.
    """
    if isinstance(data, Mapping):
        if isinstance(data.get("sessions"), list):
            raw_sessions: Sequence[Any] = data["sessions"]
        elif isinstance(data.get("messages"), list):
            raw_sessions = [data["messages"]]
        else:
            raw_sessions = [[data]]
        sample_id = str(data.get("sample_id") or data.get("user") or sample_id)
    elif isinstance(data, list) and all(isinstance(x, list | Mapping) for x in data):
        # A list of message dicts is one session (``add_memory`` names a bad one's key), unless
        # its items are sessions: lists of messages or mappings holding ``messages``.
        flat = all(isinstance(x, Mapping) and not _is_session(x) for x in data)
        raw_sessions = ([data] if data else []) if flat else data
    else:
        raise InputError(f"{where}: expected a list of messages, a list of sessions, or a mapping")
    sessions = []
    for i, raw in enumerate(raw_sessions):
        date = None
        if isinstance(raw, Mapping):
            date = raw.get("date") or raw.get("time_stamp")
            raw = raw.get("messages")
        if not isinstance(raw, list) or not all(isinstance(m, Mapping) for m in raw):
            raise InputError(f"{where}: session {i}: expected a list of message dicts")
        messages = []
        for m in raw:
            message = dict(m)
            if date is not None and not (message.get("time_stamp") or message.get("timestamp")):
                message["time_stamp"] = date
            messages.append(message)
        sessions.append(Session(id=f"session_{i + 1}", date=date, messages=tuple(messages)))
    return Conversation(sample_id=sample_id, format="messages", sessions=tuple(sessions))
