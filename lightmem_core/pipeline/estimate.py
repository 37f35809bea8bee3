"""What an ingestion would spend on the LLM, without spending it or writing anything.

``LightMemory.add_memory(..., dry_run=True)`` and ``lightmem add --dry-run`` use an
:class:`IngestionPlan`: it reads the journal (the messages already buffered in the scope) and
plays the buffers forward the way ingestion does, call after call, but writes nothing, runs no
compressor, segmenter or LLM, and books no usage. For every batch that would be flushed it
renders the real extraction request (the system message, the prompt with the conversation
lines, the JSON schema sent) and counts its prompt tokens as OpenAI bills them (cl100k: 3 + the
sum over messages of 3 + content tokens, plus the schema), or, without tiktoken, estimates
them at four characters per token.

The estimate is an upper bound where ingestion is data-dependent: without a forced segment,
the last topic of the sensory buffer may stay there (the plan moves all of it on), a
compressor would shorten messages (the plan counts them whole), and with ``update: online``
each batch may add one reconcile call (``llm_calls_max``). Answer tokens are not estimated.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import attrs
from lightmem_hookspecs import Message, Scope, Segment

from ..messages import count_tokens, normalize_messages
from .runtime import Runtime

ROLES_BY_USE = {
    "user_only": ("user",),
    "assistant_only": ("assistant",),
    "hybrid": ("user", "assistant"),
}


@attrs.frozen
class IngestEstimate:
    """What an ingestion would spend: extraction calls (one per flushed batch), their prompt
    tokens, and the calls an online update could add."""

    messages_received: int
    messages_new: int
    batches: int
    llm_calls: int
    llm_calls_max: int
    prompt_tokens: int
    messages_buffered: int
    token_counting: str

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


def _encoder() -> tuple[Any, str]:
    try:
        from ..llm.tokens import cl100k

        return cl100k(), "cl100k"
    except Exception:  # tiktoken or its offline encoding missing: estimate
        return None, "estimate (4 characters per token)"


def prompt_tokens(messages: Sequence[dict[str, str]], schema: Any, encoder: Any) -> int:
    """Prompt tokens of one chat request as OpenAI bills them (see the module docs)."""

    def size(text: str) -> int:
        return len(encoder.encode(text)) if encoder is not None else -(-len(text) // 4)

    total = 3 + sum(3 + size(m.get("content", "")) for m in messages)
    return total + (size(json.dumps(schema)) if schema else 0)


_ENCODER: list[tuple[Any, str]] = []


def batch_prompt_tokens(rt: Runtime, segments: Sequence[Segment]) -> int:
    """The prompt tokens of the extraction request for ``segments`` (see the module docs)."""
    from ..llm.extraction import _output_format, extraction_schema, render_conversation

    if not _ENCODER:
        _ENCODER.append(_encoder())
    encoder = _ENCODER[0][0]
    config = rt.config
    batch = render_conversation(segments, ROLES_BY_USE[config.messages_use])
    if not batch.messages:
        return 0
    relations = bool(rt.backends.graphs())
    request = [
        {"role": "system", "content": rt.prompts.system},
        {
            "role": "user",
            "content": rt.prompts.render(
                "extraction",
                conversation=batch.text,
                output_format=_output_format(
                    config.metadata_generate, config.text_summary, relations
                ),
            ),
        },
    ]
    schema = extraction_schema(
        metadata_generate=config.metadata_generate,
        text_summary=config.text_summary,
        message_ids=list(batch.messages),
        topic_ids=list(batch.topics),
        relations=relations,
    )
    return prompt_tokens(request, schema, encoder)


class IngestionPlan:
    """Plays ``add_memory`` calls forward on a copy of the buffers (see the module docs)."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        if not _ENCODER:
            _ENCODER.append(_encoder())
        self.counting = _ENCODER[0][1]
        self.seen: set[tuple[Any, str]] = set()
        self.sensory: dict[Any, list[Message]] = {}
        self.short_term: dict[Any, list[Message]] = {}
        self.received = self.new = self.batches = self.tokens = 0

    def _load(self, scope: Scope) -> None:
        if scope in self.sensory:
            return
        store = self.rt.store
        self.sensory[scope] = [r.message for r in store.journal("sensory", scope)]
        self.short_term[scope] = [r.message for r in store.journal("short_term", scope)]

    def _uses(self, message: Message) -> bool:
        return message.role in ROLES_BY_USE[self.rt.config.messages_use]

    def add_memory(
        self, messages: Any, scope: Scope, *, force_segment: bool, force_extract: bool
    ) -> IngestEstimate:
        """Account for one ``add_memory`` call; returns the plan's running total."""
        config = self.rt.config
        normalized = normalize_messages(messages, scope)
        self._load(scope)
        known = self.rt.store.messages_by_id((m.id for m in normalized), scope=scope)
        fresh = [m for m in normalized if m.id not in known and (scope, m.id) not in self.seen]
        self.seen.update((scope, m.id) for m in fresh)
        self.received += len(normalized)
        self.new += len(fresh)
        sensory = self.sensory[scope] + fresh
        force_segment = force_segment or force_extract
        if sensory and (
            force_segment
            or sum(count_tokens(m.content) for m in sensory) >= config.sensory_buffer_tokens
        ):
            self.short_term[scope] = self.short_term[scope] + sensory
            sensory = []
        self.sensory[scope] = sensory
        rows = self.short_term[scope]
        if rows and (
            force_extract
            or sum(count_tokens(m.content) for m in rows if self._uses(m))
            >= config.short_term_buffer_tokens
        ):
            self.short_term[scope] = []
            self._flush(rows)
        return self.estimate()

    def _flush(self, rows: list[Message]) -> None:
        if not any(self._uses(m) for m in rows):
            return
        self.batches += 1
        self.tokens += batch_prompt_tokens(self.rt, [Segment(topic_id=0, messages=tuple(rows))])

    def estimate(self) -> IngestEstimate:
        online = self.rt.config.update == "online" and self.rt.llm is not None
        llm = self.rt.llm is not None
        calls = self.batches if llm else 0
        buffered = sum(len(v) for v in self.sensory.values()) + sum(
            len(v) for v in self.short_term.values()
        )
        return IngestEstimate(
            messages_received=self.received,
            messages_new=self.new,
            batches=self.batches,
            llm_calls=calls,
            llm_calls_max=calls * 2 if online else calls,
            prompt_tokens=self.tokens if llm else 0,
            messages_buffered=buffered,
            token_counting=self.counting,
        )
