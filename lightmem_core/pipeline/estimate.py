"""What an ingestion would spend on the LLM, without spending it or writing anything.

``LightMemory.add_memory(..., dry_run=True)`` and ``lightmem add --dry-run`` use an
:class:`IngestionPlan`: it reads the journal (the messages already buffered in the scope) and
plays the buffers forward with ingestion's own buffer policy (:mod:`.buffers`), call after call,
but writes nothing, runs no LLM, and books no usage. The local stages run as in ingestion
(:mod:`.local`): the pre-compressor chain shortens the new messages and the topic segmenter
cuts the sensory buffer, so the plan holds the texts and topics a real run would. For every
batch that would be flushed it renders the extraction request ingestion sends
(:func:`lightmem_core.llm.extraction.extraction_request`: the system message, the prompt with the
conversation lines by topic, the JSON schema sent) and counts its prompt tokens as OpenAI bills
them (:func:`lightmem_core.llm.tokens.prompt_tokens`: cl100k, or four characters per token
without tiktoken). With or without a compressor and a segmenter, the plan's calls and prompt
tokens are exactly what ingestion then spends (a test checks it, over several call patterns).

The estimate is an upper bound where ingestion depends on more than the messages: a
``lightmem_segments_ready`` hook may edit or drop messages (the plan runs no hooks), a per-call
token budget may hold batches back, and with ``update: online`` each batch may add one
reconcile call (``llm_calls_max``). Answer tokens are not estimated.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
from lightmem_hookspecs import Message, Scope, Segment

from ..llm.extraction import ROLES_BY_USE, BatchCost, ExtractionRequest, extraction_request
from ..llm.extraction import batch_cost as _split_cost
from ..llm.tokens import token_counting
from ..messages import normalize_messages
from . import buffers, local
from .runtime import Runtime


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


def batch_request(rt: Runtime, segments: Sequence[Segment]) -> ExtractionRequest:
    """The extraction request ingestion sends for ``segments`` (one rendering)."""
    config = rt.config
    return extraction_request(
        segments,
        roles=ROLES_BY_USE[config.messages_use],
        prompts=rt.prompts,
        metadata_generate=config.metadata_generate,
        text_summary=config.text_summary,
        relations=bool(rt.backends.graphs()),
        captions=config.multimodal_embedder is not None,
    )


def batch_prompt_tokens(rt: Runtime, segments: Sequence[Segment]) -> int:
    """The prompt tokens of the extraction request for ``segments`` (see the module docs)."""
    return batch_request(rt, segments).prompt_tokens()


def batch_cost(rt: Runtime, segments: Sequence[Segment]) -> BatchCost:
    """The extraction request's cost for ``segments``: a fixed overhead plus one cost per shown
    message, from one rendering."""
    return _split_cost(batch_request(rt, segments))


def _topics(messages: Sequence[Message], topic_ids: Sequence[int | None]) -> list[list[Message]]:
    groups: list[list[Message]] = []
    last: object = object()
    for message, topic in zip(messages, topic_ids, strict=True):
        if groups and topic == last:
            groups[-1].append(message)
        else:
            groups.append([message])
        last = topic
    return groups


class IngestionPlan:
    """Plays ``add_memory`` calls forward on a copy of the buffers (see the module docs)."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.counting = token_counting()
        self.seen: set[tuple[Any, str]] = set()
        self.sensory: dict[Any, list[Message]] = {}
        #: The short-term buffer of each scope as its topics (one list of messages per topic).
        self.short_term: dict[Any, list[list[Message]]] = {}
        self.received = self.new = self.batches = self.tokens = 0

    def _load(self, scope: Scope) -> None:
        if scope in self.sensory:
            return
        store = self.rt.store
        self.sensory[scope] = [r.message for r in store.journal("sensory", scope)]
        rows = store.journal("short_term", scope)
        self.short_term[scope] = _topics([r.message for r in rows], [r.topic_id for r in rows])

    def add_memory(
        self, messages: Any, scope: Scope, *, force_segment: bool, force_extract: bool
    ) -> IngestEstimate:
        """Account for one ``add_memory`` call; returns the plan's running total."""
        config = self.rt.config
        normalized = normalize_messages(
            messages,
            scope,
            max_chars=config.max_message_chars,
            truncate=config.truncate_long_messages,
        )
        self._load(scope)
        known = self.rt.store.messages_by_id((m.id for m in normalized), scope=scope)
        fresh = [m for m in normalized if m.id not in known and (scope, m.id) not in self.seen]
        self.seen.update((scope, m.id) for m in fresh)
        self.received += len(normalized)
        self.new += len(fresh)
        sensory = self.sensory[scope] + local.compress(self.rt, fresh, dry_run=True)
        force = force_segment or force_extract
        if buffers.sensory_moves_on(config, sensory, force):
            boundaries = local.segment(self.rt, sensory, dry_run=True)
            moved = local.topics(sensory, boundaries, force)
            self.short_term[scope] = [*self.short_term[scope], *moved]
            sensory = sensory[sum(len(t) for t in moved) :]
        self.sensory[scope] = sensory
        topics = self.short_term[scope]
        if buffers.short_term_flushes(config, (m for t in topics for m in t), force_extract):
            self.short_term[scope] = []
            self._flush(topics)
        return self.estimate()

    def _flush(self, topics: list[list[Message]]) -> None:
        if not any(buffers.uses(self.rt.config, m) for t in topics for m in t):
            return
        self.batches += 1
        segments = [Segment(topic_id=i, messages=tuple(t)) for i, t in enumerate(topics)]
        self.tokens += batch_prompt_tokens(self.rt, segments)

    def estimate(self) -> IngestEstimate:
        online = self.rt.config.update == "online" and self.rt.llm is not None
        llm = self.rt.llm is not None
        calls = self.batches if llm else 0
        buffered = sum(len(v) for v in self.sensory.values()) + sum(
            len(t) for v in self.short_term.values() for t in v
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
