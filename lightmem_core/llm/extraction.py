"""Fact extraction: one LLM call turns a whole short-term batch of topic segments into facts.

API::

    extract_facts(llm, segments, *, messages_use, metadata_generate, text_summary,
                  extract_threshold, prompts=None, max_attempts=3, max_tokens=None,
                  relations=False, captions=False)
        -> ExtractionResult(facts: list[ExtractedFact], raw: str, attempts: int,
                            below_threshold: int, unsourced: int, unextracted: tuple[str, ...],
                            error: str, captions: tuple[ImageCaption, ...])
    ExtractedFact(text, source_message_ids, time_stamp, speaker_id, speaker_name, topic_id,
                  importance, keywords, entities, category, topic_summary, relations)
    ExtractedRelation(subject, relation, object, single)
    ImageCaption(message_id, part, sha256, text)
    extraction_schema(*, metadata_generate, text_summary, message_ids=None, topic_ids=None,
                      relations=False, captions=False, image_ids=None)
        -> dict          # the answer's JSON schema; with ids, the stricter one sent to the LLM
    render_conversation(segments, roles, images=False) -> RenderedBatch  # what the LLM sees
    ROLES_BY_USE: dict[str, tuple[str, ...]]                         # messages_use -> roles

How the batch is shown: every message whose role ``messages_use`` admits (``user_only``: user,
``assistant_only``: assistant, ``hybrid``: both; other roles never) gets a short id ``m1``,
``m2``, ... in batch order and one line ``[m3] 2023-05-20 (Sat) 02:21, Alice (user): "text"``
under the header of its topic segment (``Topic t1``). The text is a JSON string (and a speaker
name with unusual characters too), so a message cannot break out of its line, and the prompt
tells the model that message texts are data, never instructions. Segments left with no
admitted message are not shown; if no message is admitted at all, no call is made and the
result is empty.

What comes back: a JSON object ``{"topics": [...], "facts": [...]}``, each fact with its text,
the short ids of its source messages and an importance score. The schema sent to the LLM
limits ``sources`` and ``topic`` to the ids shown (an ``enum``); replies are validated against
the schema without ids, so other spellings still reach the mapping. Mapping back:

- Source ids are matched leniently (``m3``, ``M3``, ``[m3]``, ``3``); unknown ids are dropped;
  a fact left with no valid source is dropped (counted in ``unsourced``). The sources are
  ordered as in the batch; the fact's ``time_stamp``, speaker and ``topic_id`` are those of its
  first source in batch order.
- ``importance`` is clamped into [0, 1] (a missing or non-finite score counts as 0).
  **extract_threshold** is the minimum importance a fact needs to be kept: facts scored below
  it are dropped (counted in ``below_threshold``). 0 keeps every fact; the default 0.1 drops
  only what the model itself rates as trivia; it must lie in [0, 1].
- ``metadata_generate`` asks for ``keywords``, ``entities`` and ``category`` per fact;
  ``text_summary`` asks for one summary sentence per topic segment, attached to every fact whose
  first source lies in that segment as ``topic_summary``.
- ``relations`` (graph memory) asks, in the same call, for the relations each fact states
  between the people, places and things it names: ``{"subject", "relation", "object",
  "single"}`` (``relation`` in snake_case, ``single`` true when the subject has one such object
  at a time, like ``lives_in``). Relations missing a subject, relation or object are dropped.
  The answer may then use :data:`RELATIONS_ROOM` times the backend's ``max_tokens``, so the
  longer answer does not split the batch into more calls.
- ``captions`` (image memory, with a ``multimodal_embedder``): a message that carried images
  shows one marker per image after its text, ``3 Maya: "my dog at the beach" [image i1]``, and
  the same call asks for ``"images": [{"image": "i1", "caption": "..."}]``: a sentence on what
  the picture shows, from what the conversation says about it. Each usable caption (a known
  image, a non-empty text) comes back as an :class:`ImageCaption` naming the message and the
  image (its content part and hash); an unknown image, a missing or empty caption, or no
  ``images`` at all gives none, and the image keeps the caption it has. The instruction is
  part of ``$output_format`` whenever image memory is configured, so the prompt's static
  prefix is the same for every batch.
- Facts with the same text (ignoring case and spacing) are merged: sources united, highest
  importance kept.

An answer cut at the token limit is never used: the batch is halved and each part extracted
on its own (see :func:`extract_facts`); messages no part could extract are returned in
``unextracted`` and stay pending.

If every returned fact cites only unknown ids, the answer is asked again with that feedback;
if the last answer still cites none, all its facts are dropped as unsourced (the result is
empty, not an error). A reply that is not JSON of the schema after ``max_attempts`` calls raises
:class:`~lightmem_core.llm.structured.StructuredOutputError` (an ``ExtractionError``).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
from lightmem_hookspecs import AnswerLimit, Message, Segment

from .prompts import Prompts
from .structured import StructuredOutputError, TruncatedReplyError, ask_json, validate

log = logging.getLogger("lightmem")

#: Which message roles each ``messages_use`` value sends to the LLM.
ROLES_BY_USE: dict[str, tuple[str, ...]] = {
    "user_only": ("user",),
    "assistant_only": ("assistant",),
    "hybrid": ("user", "assistant"),
}

#: Categories suggested to the model when ``metadata_generate`` is on (not enforced).
CATEGORIES = (
    "personal",
    "preference",
    "relationship",
    "work",
    "education",
    "health",
    "event",
    "plan",
    "hobby",
    "other",
)


@attrs.frozen
class ExtractedRelation:
    """A relation a fact states: ``subject -relation-> object``; ``single``: one at a time."""

    subject: str
    relation: str
    object: str
    single: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "relation": self.relation,
            "object": self.object,
            "single": self.single,
        }


@attrs.frozen
class ExtractedFact:
    """One fact from an extraction call, with provenance mapped back to journal message ids."""

    text: str
    source_message_ids: tuple[str, ...]
    time_stamp: _dt.datetime | None = None
    speaker_id: str | None = None
    speaker_name: str | None = None
    topic_id: int | None = None
    importance: float = 1.0
    keywords: tuple[str, ...] = ()
    entities: tuple[str, ...] = ()
    category: str | None = None
    topic_summary: str | None = None
    relations: tuple[ExtractedRelation, ...] = ()


@attrs.frozen
class ImageCaption:
    """The caption an extraction call wrote for an image of a message: the message's id, the
    image's content part (``messages[i].content[part]``) and hash, and the text."""

    message_id: str
    part: int
    sha256: str
    text: str


@attrs.frozen
class ExtractionResult:
    """The kept facts of one batch, the raw reply, and what was dropped.

    ``attempts`` is the number of LLM calls made (0: no message was admitted, nothing asked).
    ``unextracted`` lists the ids of messages whose facts could not be extracted (their part's
    answer was cut or failed, see :func:`extract_facts`); ``error`` says why.
    """

    facts: list[ExtractedFact]
    raw: str = ""
    attempts: int = 0
    below_threshold: int = 0
    unsourced: int = 0
    unextracted: tuple[str, ...] = ()
    error: str = ""
    captions: tuple[ImageCaption, ...] = ()


@attrs.frozen
class _Source:
    message: Message
    position: int
    topic_id: int
    segment: int


@attrs.frozen
class RenderedBatch:
    """The conversation text the LLM sees and the short ids it can cite."""

    text: str
    messages: Mapping[str, _Source]  # "m3" -> source
    topics: Mapping[str, int]  # "t1" -> segment index
    images: Mapping[str, tuple[Message, Mapping[str, Any]]] = attrs.field(factory=dict)
    # "i1" -> (its message, its entry in the message's metadata["images"])


def _time(ts: _dt.datetime | None) -> str:
    return ts.strftime("%Y-%m-%d (%a) %H:%M") if ts is not None else "time unknown"


_PLAIN_NAME = re.compile(r"^[\w][\w .'-]{0,99}$")


def _speaker(message: Message) -> str:
    """``Alice (user)``; a name with other characters is JSON-quoted so it cannot imitate the
    line's structure."""
    name = message.speaker_name or message.speaker_id
    if not name:
        return message.role
    shown = name if _PLAIN_NAME.match(name) else json.dumps(name, ensure_ascii=False)
    return shown if message.role == "user" else f"{shown} ({message.role})"


def render_conversation(
    segments: Sequence[Segment], roles: Sequence[str], images: bool = False
) -> RenderedBatch:
    """Render the admitted messages of ``segments`` with short ids, grouped by topic.

    Each topic starts with a ``Topic t1`` line; a time line (``2023-05-20 (Sat) 02:21``) dates
    the messages below it and is repeated only when the time changes; each message is one line
    ``3 Alice: "text"`` (the text JSON-quoted; the role named only when it is not ``user``).
    With ``images``, a message that carried images ends with one ``[image i1]`` marker each (a
    message of images only shows ``""`` as its text).
    """
    from ..images import PLACEHOLDER

    lines: list[str] = []
    messages: dict[str, _Source] = {}
    topics: dict[str, int] = {}
    shown_images: dict[str, tuple[Message, Mapping[str, Any]]] = {}
    for index, segment in enumerate(segments):
        admitted = [m for m in segment.messages if m.role in roles]
        if not admitted:
            continue
        short_topic = f"t{len(topics) + 1}"
        topics[short_topic] = index
        lines.append(f"Topic {short_topic}")
        shown_time: str | None = None
        for message in admitted:
            when = _time(message.time_stamp)
            if when != shown_time:
                lines.append(when)
                shown_time = when
            short = f"m{len(messages) + 1}"
            messages[short] = _Source(message, len(messages), segment.topic_id, index)
            # The text is data, JSON-quoted: it cannot end its line or pose as an instruction.
            text = message.content.strip()
            refs = _image_refs(message) if images else []
            if refs and text == PLACEHOLDER:
                text = ""
            line = f"{len(messages)} {_speaker(message)}: {json.dumps(text, ensure_ascii=False)}"
            for ref in refs:
                short_image = f"i{len(shown_images) + 1}"
                shown_images[short_image] = (message, ref)
                line += f" [image {short_image}]"
            lines.append(line)
    return RenderedBatch("\n".join(lines), messages, topics, shown_images)


def _image_refs(message: Message) -> list[Mapping[str, Any]]:
    """The images a message carried (``metadata["images"]``, as image memory lists them)."""
    refs = (message.metadata or {}).get("images")
    if not isinstance(refs, list):
        return []
    return [r for r in refs if isinstance(r, Mapping) and isinstance(r.get("sha256"), str)]


def _ids(ids: Sequence[str] | None) -> dict[str, Any]:
    return {"type": "string", "enum": list(ids)} if ids else {"type": "string"}


def _message_ref(count: int | None) -> dict[str, Any]:
    """A message reference: in the schema sent, the number shown (1..count); accepted: a number
    or a string such as ``"m3"`` or ``"[3]"``, matched leniently."""
    if count:
        return {"type": "integer", "minimum": 1, "maximum": count}
    return {"type": ["integer", "string"]}


def extraction_schema(
    *,
    metadata_generate: bool,
    text_summary: bool,
    message_ids: Sequence[str] | None = None,
    topic_ids: Sequence[str] | None = None,
    relations: bool = False,
    captions: bool = False,
    image_ids: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The JSON schema of the extraction answer for these settings.

    With ``message_ids`` / ``topic_ids`` the ``sources`` are restricted to the message numbers
    shown (``minimum`` 1, ``maximum`` their count) and ``topic`` to the topic ids shown (an
    ``enum``): that is the schema sent to the LLM, so a grammar-constrained model can only cite
    messages it was shown. Replies are validated against the schema without ids, and unknown
    ids are dropped rather than rejected.

    With ``captions`` the answer may carry ``images`` (an image's id and its caption): optional
    in the schema replies are validated against (a reply without it is used, the images keep
    their captions); in the schema sent, required and limited to ``image_ids`` when the batch
    shows images, absent when it shows none.
    """
    strings = {"type": "array", "items": {"type": "string"}}
    fact: dict[str, Any] = {
        "text": {"type": "string"},
        "sources": {"type": "array", "items": _message_ref(len(message_ids or ()))},
        "importance": {"type": "number"},
    }
    if metadata_generate:
        fact |= {"keywords": strings, "entities": strings, "category": {"type": "string"}}
    if relations:
        relation = {
            "subject": {"type": "string"},
            "relation": {"type": "string"},
            "object": {"type": "string"},
            "single": {"type": "boolean"},
        }
        fact["relations"] = {
            "type": "array",
            "items": {
                "type": "object",
                "properties": relation,
                "required": list(relation),
                "additionalProperties": False,
            },
        }
    facts = {
        "type": "array",
        "items": {
            "type": "object",
            "properties": fact,
            "required": list(fact),
            "additionalProperties": False,
        },
    }
    props: dict[str, Any] = {}
    if text_summary:
        topic = {"topic": _ids(topic_ids), "summary": {"type": "string"}}
        props["topics"] = {
            "type": "array",
            "items": {
                "type": "object",
                "properties": topic,
                "required": list(topic),
                "additionalProperties": False,
            },
        }
    props["facts"] = facts
    required = list(props)
    sent = message_ids is not None
    if captions and (image_ids or not sent):
        caption = {"image": _ids(image_ids), "caption": {"type": "string"}}
        props["images"] = {
            "type": "array",
            "items": {
                "type": "object",
                "properties": caption,
                "required": list(caption),
                "additionalProperties": False,
            },
        }
        if sent:
            required.append("images")
    return {
        "title": "lightmem_extraction",
        "type": "object",
        "properties": props,
        "required": required,
        "additionalProperties": False,
    }


def _output_format(
    metadata_generate: bool, text_summary: bool, relations: bool = False, captions: bool = False
) -> str:
    fact = '{"text": "...", "sources": [1], "importance": 0.7'
    if metadata_generate:
        fact += ', "keywords": ["..."], "entities": ["..."], "category": "..."'
    if relations:
        fact += (
            ', "relations": [{"subject": "...", "relation": "lives_in", "object": "...", '
            '"single": true}]'
        )
    fact += "}"
    shape = f'"facts": [{fact}]'
    if text_summary:
        shape = f'"topics": [{{"topic": "t1", "summary": "one sentence"}}], {shape}'
    if captions:
        shape += ', "images": [{"image": "i1", "caption": "..."}]'
    lines = [f"Answer with JSON only: {{{shape}}}"]
    if metadata_generate:
        lines.append(
            "keywords: words to find the fact by; entities: the people, places and things it "
            "names; category: " + "|".join(CATEGORIES) + "."
        )
    if relations:
        lines.append(
            '- "relations": how the fact links the people, places, things and dates it names: '
            '"subject" and "object" as the fact names them (full names), "relation" in '
            'snake_case (lives_in, works_at, friend_of, likes, owns, visited_on); "single" is '
            "true when the subject has only one such object at a time (lives_in, works_at, "
            "married_to), false otherwise. [] when the fact links nothing."
        )
    if text_summary:
        lines.append("topics: one per topic.")
    if captions:
        lines.append(
            "images: one per [image i1] marker in the conversation: a caption of one sentence "
            "saying what the picture shows and who or what is in it, from what the messages "
            "say about it (names, places, dates); [] when there is no marker."
        )
    lines.append('Nothing worth keeping: an empty "facts" list.')
    return "\n".join(lines)


_SHORT = re.compile(r"^(?:(m|msg|message|t|topic|i|img|image)\s*[-_#]?\s*)?(\d+)$")


def _short_id(value: Any, prefix: str) -> str:
    """The canonical short id (``m3``, ``t1``) ``value`` names, or ``""`` if none."""
    text = str(value).strip().strip("[]()<>\"'").strip().lower()
    match = _SHORT.match(text)
    if not match:
        return ""
    kind = (match.group(1) or prefix)[0]
    return f"{kind}{int(match.group(2))}" if kind == prefix else ""


def _importance(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    return min(1.0, max(0.0, number)) if math.isfinite(number) else 0.0


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    seen: dict[str, None] = {}
    for item in value:
        text = str(item).strip()
        if text and text.lower() not in {s.lower() for s in seen}:
            seen[text] = None
    return tuple(seen)


def _relations(value: Any) -> tuple[ExtractedRelation, ...]:
    if not isinstance(value, list):
        return ()
    found: dict[tuple[str, str, str], ExtractedRelation] = {}
    for item in value:
        if not isinstance(item, Mapping):
            continue
        subject, relation, obj = (
            " ".join(str(item.get(k) or "").split()) for k in ("subject", "relation", "object")
        )
        if not (subject and relation and obj):
            continue
        key = (subject.lower(), relation.lower(), obj.lower())
        single = item.get("single") is True
        found.setdefault(key, ExtractedRelation(subject, relation, obj, single=single))
    return tuple(found.values())


def _sources_of(item: Mapping[str, Any], batch: RenderedBatch) -> list[_Source]:
    found: dict[str, _Source] = {}
    for raw in item.get("sources") or ():
        short = _short_id(raw, "m")
        if short in batch.messages:
            found[short] = batch.messages[short]
    return sorted(found.values(), key=lambda s: s.position)


def _check_sources(batch: RenderedBatch) -> Any:
    def check(value: Any) -> list[str]:
        facts = value.get("facts") or []
        if facts and not any(_sources_of(f, batch) for f in facts):
            known = ", ".join(str(n) for n in range(1, min(3, len(batch.messages)) + 1))
            return [
                "$.facts: no fact cites a message of the conversation; put the numbers that "
                f'start the message lines (e.g. {known}) in each fact\'s "sources"'
            ]
        return []

    return check


#: How many times a batch whose answer was cut may be halved (at most 2**6 parts).
MAX_SPLIT_DEPTH = 6
#: The most answer tokens a single message's extraction is re-asked with after a cut.
MAX_ANSWER_TOKENS = 16384
#: With ``relations`` the answer may use this many times the backend's ``max_tokens``.
RELATIONS_ROOM = 2
#: The answer room an extraction call asks for, per token of the conversation it shows (a fact
#: restates its message, with its keywords, entities, category and sources) ...
ANSWER_TOKENS_PER_CONVERSATION_TOKEN = 2
#: ... plus this much (topic summaries, the JSON around the facts).
ANSWER_TOKENS_BASE = 512


def answer_room(conversation: str, relations: bool = False) -> int:
    """The answer tokens an extraction of ``conversation`` (its rendered lines) may need, at
    most :data:`MAX_ANSWER_TOKENS`. A call asks for this much when the backend's own limit is
    lower, so the default batch (``short_term_buffer_tokens``) fits one answer."""
    from .tokens import count_text_tokens

    room = ANSWER_TOKENS_PER_CONVERSATION_TOKEN * count_text_tokens(conversation)
    room += ANSWER_TOKENS_BASE
    return min(MAX_ANSWER_TOKENS, room * (RELATIONS_ROOM if relations else 1))


@attrs.frozen
class ExtractionRequest:
    """The extraction call for one batch, as it is sent: the chat ``messages`` (system and
    prompt), the JSON ``schema`` sent with them and the rendered ``batch``."""

    messages: tuple[dict[str, str], ...]
    schema: Mapping[str, Any]
    batch: RenderedBatch

    def prompt_tokens(self) -> int:
        """Its prompt tokens as OpenAI bills them (:func:`.tokens.prompt_tokens`)."""
        from .tokens import prompt_tokens

        return prompt_tokens(self.messages, self.schema) if self.batch.messages else 0


def extraction_request(
    segments: Sequence[Segment],
    *,
    roles: Sequence[str],
    prompts: Prompts,
    metadata_generate: bool,
    text_summary: bool,
    relations: bool = False,
    captions: bool = False,
) -> ExtractionRequest:
    """The extraction request :func:`extract_facts` sends for ``segments`` (one rendering)."""
    batch = render_conversation(segments, roles, images=captions)
    messages = (
        {"role": "system", "content": prompts.system},
        {
            "role": "user",
            "content": prompts.render(
                "extraction",
                conversation=batch.text,
                output_format=_output_format(metadata_generate, text_summary, relations, captions),
            ),
        },
    )
    schema = extraction_schema(
        metadata_generate=metadata_generate,
        text_summary=text_summary,
        message_ids=list(batch.messages),
        topic_ids=list(batch.topics),
        relations=relations,
        captions=captions,
        image_ids=list(batch.images),
    )
    return ExtractionRequest(messages, schema, batch)


@attrs.frozen
class BatchCost:
    """The prompt tokens of a batch's extraction request, split as a fixed overhead plus one
    cost per admitted message (its line, and its topic and time lines where it opens them), in
    order: ``prefix(n)`` is the cost of the request for the first ``n`` admitted messages,
    computed from one rendering (exact for ``n`` = all; within a few tokens otherwise, as the
    numbering and the schema's limits change)."""

    fixed: int
    per_message: tuple[int, ...]

    @property
    def total(self) -> int:
        return self.fixed + sum(self.per_message)

    def prefix(self, n: int) -> int:
        return self.fixed + sum(self.per_message[:n]) if n > 0 else 0


def batch_cost(request: ExtractionRequest) -> BatchCost:
    """Split ``request``'s prompt tokens into a fixed overhead and per-message costs (lines are
    counted with their line break: a line's tokens never cross it)."""
    from .tokens import count_text_tokens

    total = request.prompt_tokens()
    lines = request.batch.text.split("\n") if request.batch.messages else []
    per: list[int] = []
    pending = 0
    for i, line in enumerate(lines):
        cost = count_text_tokens(line + ("\n" if i + 1 < len(lines) else ""))
        pending += cost
        if _MESSAGE_LINE.match(line):
            per.append(pending)
            pending = 0
    if per:
        per[-1] += pending
    return BatchCost(total - sum(per), tuple(per))


_MESSAGE_LINE = re.compile(r"^\d+ .*?: \"")


@attrs.frozen
class _Settings:
    llm: Any
    roles: tuple[str, ...]
    metadata_generate: bool
    text_summary: bool
    extract_threshold: float
    prompts: Prompts
    max_attempts: int
    relations: bool
    captions: bool = False


def extract_facts(
    llm: Any,
    segments: Sequence[Segment],
    *,
    messages_use: str,
    metadata_generate: bool,
    text_summary: bool,
    extract_threshold: float,
    prompts: Prompts | None = None,
    max_attempts: int = 3,
    max_tokens: int | None = None,
    relations: bool = False,
    captions: bool = False,
) -> ExtractionResult:
    """Extract facts from a batch of topic segments with ONE call to ``llm`` (plus retries).

    An answer cut at the token limit is never used. The batch is halved instead (at topic
    boundaries where it can, between messages where it must) and each half extracted on its
    own, up to :data:`MAX_SPLIT_DEPTH` times; a single message whose answer is still cut is
    asked once more with twice the room (at most :data:`MAX_ANSWER_TOKENS`). Messages whose
    part could not be extracted are listed in ``ExtractionResult.unextracted`` (with the reason
    in ``error``): the caller keeps them pending. If no part succeeds, the last error is
    raised. See the module documentation for how messages are shown and facts mapped back.
    """
    if messages_use not in ROLES_BY_USE:
        raise ValueError(
            f"messages_use must be one of {', '.join(ROLES_BY_USE)}, got {messages_use!r}"
        )
    if not 0.0 <= extract_threshold <= 1.0:
        raise ValueError(
            f"extract_threshold is the minimum importance (0..1) a fact needs to be kept; "
            f"got {extract_threshold}"
        )
    settings = _Settings(
        llm=llm,
        roles=ROLES_BY_USE[messages_use],
        metadata_generate=metadata_generate,
        text_summary=text_summary,
        extract_threshold=extract_threshold,
        prompts=prompts or Prompts(),
        max_attempts=max_attempts,
        relations=relations,
        captions=captions,
    )
    whole = render_conversation(segments, settings.roles)
    if not whole.messages:
        return ExtractionResult(facts=[])
    if relations and max_tokens is None and _configured_limit(llm):
        # Every fact carries its relations: room for them, so that the longer answer is not cut
        # and the batch not split into more calls than it takes without graph memory.
        max_tokens = min(MAX_ANSWER_TOKENS, RELATIONS_ROOM * _configured_limit(llm))
    parts, missing, errors = _extract_parts(settings, list(segments), max_tokens, depth=0)
    if not parts:
        raise errors[-1]
    order = {s.message.id: s.position for s in whole.messages.values()}
    facts: dict[str, ExtractedFact] = {}
    for part in parts:
        for fact in part.facts:
            key = fact.text.lower()
            facts[key] = _merge(facts[key], fact, order) if key in facts else fact
    written: dict[tuple[str, int, str], ImageCaption] = {}
    for part in parts:
        for caption in part.captions:
            written.setdefault((caption.message_id, caption.part, caption.sha256), caption)
    return ExtractionResult(
        facts=list(facts.values()),
        raw=parts[-1].raw,
        attempts=sum(p.attempts for p in parts)
        + sum(e.attempts for e in errors if isinstance(e, StructuredOutputError)),
        below_threshold=sum(p.below_threshold for p in parts),
        unsourced=sum(p.unsourced for p in parts),
        unextracted=tuple(missing),
        error="; ".join(dict.fromkeys(str(e) for e in errors))[:2000] if missing else "",
        captions=tuple(written.values()),
    )


def _admitted(segments: Sequence[Segment], roles: Sequence[str]) -> list[str]:
    return [m.id for s in segments for m in s.messages if m.role in roles]


def _halves(segments: Sequence[Segment], roles: Sequence[str]) -> list[list[Segment]] | None:
    """Two parts with about half the admitted messages each, cut at a topic boundary when one
    lies near the middle, else between messages; ``None`` for a single admitted message."""
    flat = [(i, m) for i, s in enumerate(segments) for m in s.messages]
    admitted = [k for k, (_, m) in enumerate(flat) if m.role in roles]
    if len(admitted) < 2:
        return None
    cut = admitted[len(admitted) // 2]
    boundaries = [
        k
        for k in range(1, len(flat))
        if flat[k][0] != flat[k - 1][0] and admitted[0] < k <= admitted[-1]
    ]

    def imbalance(k: int) -> float:
        return abs(sum(a < k for a in admitted) - len(admitted) / 2)

    near = [k for k in boundaries if imbalance(k) <= max(1, len(admitted) // 4)]
    if near:
        cut = min(near, key=imbalance)

    def regroup(items: list[tuple[int, Message]]) -> list[Segment]:
        out: list[Segment] = []
        last = None
        for index, message in items:
            if out and index == last:
                out[-1] = Segment(out[-1].topic_id, (*out[-1].messages, message))
            else:
                out.append(Segment(segments[index].topic_id, (message,)))
            last = index
        return out

    return [regroup(flat[:cut]), regroup(flat[cut:])]


def _configured_limit(llm: Any) -> int:
    """The answer-token limit the backend declares (:class:`~lightmem_hookspecs.AnswerLimit`),
    0 when it declares none."""
    value = llm.max_tokens if isinstance(llm, AnswerLimit) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _extract_parts(
    settings: _Settings, segments: list[Segment], max_tokens: int | None, depth: int
) -> tuple[list[ExtractionResult], list[str], list[Exception]]:
    """(results of the parts that succeeded, ids of admitted messages left unextracted,
    errors met). A failure of the whole (unsplit) batch is raised by the caller."""
    try:
        return [_extract_once(settings, segments, max_tokens)], [], []
    except TruncatedReplyError as cut:
        halves = _halves(segments, settings.roles) if depth < MAX_SPLIT_DEPTH else None
        if halves is None:
            limit = max(cut.completion_tokens, max_tokens or _configured_limit(settings.llm))
            room = min(MAX_ANSWER_TOKENS, 2 * limit)
            if room > limit:
                log.info("extraction: the answer was cut; asking again with %d tokens", room)
                try:
                    return [_extract_once(settings, segments, room)], [], []
                except Exception as again:
                    return [], _admitted(segments, settings.roles), [again]
            return [], _admitted(segments, settings.roles), [cut]
        log.info(
            "extraction: the answer for %d messages was cut at the token limit; extracting "
            "them in two parts",
            len(_admitted(segments, settings.roles)),
        )
        parts: list[ExtractionResult] = []
        missing: list[str] = []
        errors: list[Exception] = [cut]
        for half in halves:
            try:
                p, m, e = _extract_parts(settings, half, max_tokens, depth + 1)
            except Exception as exc:  # this part stays pending; the others are kept
                p, m, e = [], _admitted(half, settings.roles), [exc]
            parts += p
            missing += m
            errors += e
        return parts, missing, errors
    except Exception as exc:
        if depth == 0:
            raise
        return [], _admitted(segments, settings.roles), [exc]


def _extract_once(
    settings: _Settings, segments: Sequence[Segment], max_tokens: int | None
) -> ExtractionResult:
    """One extraction call (plus retries for unusable replies); a cut answer raises
    :class:`TruncatedReplyError`."""
    metadata_generate, text_summary = settings.metadata_generate, settings.text_summary
    relations, prompts = settings.relations, settings.prompts
    built = extraction_request(
        segments,
        roles=settings.roles,
        prompts=prompts,
        metadata_generate=metadata_generate,
        text_summary=text_summary,
        relations=relations,
        captions=settings.captions,
    )
    batch, request = built.batch, list(built.messages)
    if not batch.messages:
        return ExtractionResult(facts=[])
    limit = max_tokens if max_tokens is not None else _configured_limit(settings.llm)
    room = answer_room(batch.text, relations)
    if limit and room > limit:  # the backend's limit would cut this batch's answer
        max_tokens = room
    schema = extraction_schema(
        metadata_generate=metadata_generate,
        text_summary=text_summary,
        relations=relations,
        captions=settings.captions,
    )
    try:
        reply = ask_json(
            settings.llm,
            request,
            schema,
            prompts=prompts,
            check=_check_sources(batch),
            max_attempts=settings.max_attempts,
            max_tokens=max_tokens,
            what="extraction",
            request_schema=built.schema,
            on_truncated="raise",
        )
        value, raw, attempts = reply.value, reply.raw, reply.attempts
    except TruncatedReplyError:
        raise
    except StructuredOutputError as exc:
        if exc.value is None or validate(exc.value, schema):
            raise
        # Well-formed, but no fact cites a known message: every fact is dropped as unsourced.
        log.warning("%s; its facts are dropped", exc)
        value, raw, attempts = exc.value, exc.raw, exc.attempts
    summaries: dict[int, str] = {}
    if text_summary:
        for topic in value.get("topics") or []:
            short = _short_id(topic.get("topic", ""), "t")
            summary = str(topic.get("summary") or "").strip()
            if short in batch.topics and summary and batch.topics[short] not in summaries:
                summaries[batch.topics[short]] = summary

    order = {s.message.id: s.position for s in batch.messages.values()}
    facts: dict[str, ExtractedFact] = {}
    below = unsourced = 0
    for item in value.get("facts") or []:
        text = " ".join(str(item.get("text") or "").split())
        sources = _sources_of(item, batch)
        if not text or not sources:
            unsourced += 1
            continue
        importance = _importance(item.get("importance"))
        if importance < settings.extract_threshold:
            below += 1
            continue
        first = sources[0]
        fact = ExtractedFact(
            text=text,
            source_message_ids=tuple(s.message.id for s in sources),
            time_stamp=first.message.time_stamp,
            speaker_id=first.message.speaker_id,
            speaker_name=first.message.speaker_name,
            topic_id=first.topic_id,
            importance=importance,
            keywords=_strings(item.get("keywords")) if metadata_generate else (),
            entities=_strings(item.get("entities")) if metadata_generate else (),
            category=(str(item.get("category") or "").strip().lower() or None)
            if metadata_generate
            else None,
            topic_summary=summaries.get(first.segment),
            relations=_relations(item.get("relations")) if relations else (),
        )
        key = text.lower()
        facts[key] = _merge(facts[key], fact, order) if key in facts else fact
    return ExtractionResult(
        facts=list(facts.values()),
        raw=raw,
        attempts=attempts,
        below_threshold=below,
        unsourced=unsourced,
        captions=_captions(value.get("images"), batch),
    )


def _captions(value: Any, batch: RenderedBatch) -> tuple[ImageCaption, ...]:
    """The usable captions of an answer's ``images``: a known image and a non-empty text, the
    first one per image; anything else is left out (the image keeps its caption)."""
    if not isinstance(value, list) or not batch.images:
        return ()
    found: dict[str, ImageCaption] = {}
    for item in value:
        if not isinstance(item, Mapping):
            continue
        short = _short_id(item.get("image", ""), "i")
        text = item.get("caption")
        if short not in batch.images or short in found or not isinstance(text, str):
            continue
        text = " ".join(text.split())
        if not text:
            continue
        message, ref = batch.images[short]
        part = ref.get("part")
        if isinstance(part, int):  # which content part it was: how its entry is named
            found[short] = ImageCaption(message.id, part, str(ref["sha256"]), text)
    return tuple(found.values())


def _merge(kept: ExtractedFact, dup: ExtractedFact, order: Mapping[str, int]) -> ExtractedFact:
    ids = sorted(set(kept.source_message_ids) | set(dup.source_message_ids), key=order.__getitem__)
    if ids[0] != kept.source_message_ids[0]:
        kept, dup = dup, kept
    return attrs.evolve(
        kept,
        source_message_ids=tuple(ids),
        importance=max(kept.importance, dup.importance),
        keywords=_strings([*kept.keywords, *dup.keywords]),
        entities=_strings([*kept.entities, *dup.entities]),
        relations=tuple(dict.fromkeys([*kept.relations, *dup.relations])),
    )
