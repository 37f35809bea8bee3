"""LLM economy: calls and tokens LightMem spends on a conversation, beside a per-message reference.

LightMem sends the LLM whole short-term batches of topic segments and reconciles memories in an
offline pass; per-message memory systems (mem0 and the like) make one extraction call per message
and one update call per extracted fact. This module measures both on the same conversations,
against the same endpoint, in one run, so the economy is a measured ratio.

API::

    measure_economy(conversations, config, *, host=None, server=None, top_k=5,
                    reference=True, progress=None) -> dict          # the whole report
    lightmem_economy(conv, config, *, memory_dir, host=None, server=None) -> (dict, LightMemory)
    reference_economy(conv, llm, embedder, *, messages_use, metadata_generate, text_summary,
                      extract_threshold, prompts=None, top_k=5, server=None) -> dict
    scripted_responder(request_json) -> str      # a competent model, for the loopback server
    CountingLLM(llm)                             # counts calls and tokens per phase

How LightMem is driven (its default thresholds unless the configuration sets others): each
session goes in with ``add_memory(session, force_segment=True)`` (a session end is a topic
boundary), the last one with ``force_extract=True`` as well; batches are flushed when the
short-term buffer fills (``short_term_buffer_tokens``). Then, with ``update: offline``,
``construct_update_queue_all_entries()`` and ``offline_update_all_entries()`` (default
arguments). Calls and tokens come from ``get_token_statistics()["by_operation"]``: ``extract`` is
ingestion, ``update`` the update pass (or the online reconcile calls with ``update: online``).

How the reference is driven: for every message, in order, :func:`extract_facts` on a one-message
segment (one call; a message whose role ``messages_use`` leaves out costs nothing, as in
LightMem); then, for every extracted fact, :func:`reconcile_fact` against its ``top_k`` nearest
facts already stored by the reference (a brute-force cosine index over the same embedder's
vectors; one call, none for the very first fact), applying its update / delete decisions before
the fact is stored. Its LLM is the same backend object LightMem used (same endpoint, model,
options), called directly so that its calls are counted apart.

When a loopback :class:`~lightmem_core.testing.openai_server.OpenAICompatibleServer` is given,
the HTTP requests it received during each phase are reported too (``server_requests``), as a
cross-check of the counted calls (they differ only by HTTP-level retries).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
from lightmem_hookspecs import AnswerLimit, MemoryEntry, Scope, Segment

from ..datasets import Conversation
from ..llm.tokens import cl100k

__all__ = [
    "PATTERNS",
    "Billed",
    "CountingLLM",
    "PhaseUsage",
    "ScriptedResponder",
    "billed_prompt_tokens",
    "cl100k",
    "lightmem_economy",
    "measure_economy",
    "reference_economy",
    "scripted_responder",
]


# ---------------------------------------------------------------------------------------------
# Counting
# ---------------------------------------------------------------------------------------------


@attrs.define
class PhaseUsage:
    """LLM calls and tokens of one phase."""

    llm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def as_dict(self) -> dict[str, int]:
        return {**attrs.asdict(self), "total_tokens": self.total_tokens}

    @classmethod
    def of(cls, counters: Mapping[str, Any] | None) -> PhaseUsage:
        counters = counters or {}
        return cls(
            int(counters.get("llm_calls", 0)),
            int(counters.get("prompt_tokens", 0)),
            int(counters.get("completion_tokens", 0)),
        )

    def __add__(self, other: PhaseUsage) -> PhaseUsage:
        return PhaseUsage(
            self.llm_calls + other.llm_calls,
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
        )


class CountingLLM:
    """Wraps a memory manager; counts each ``complete`` call and its tokens under ``phase``."""

    def __init__(self, llm: Any) -> None:
        self.llm = llm
        self.model_name = getattr(llm, "model_name", None)
        self.phase = "other"
        self.usage: dict[str, PhaseUsage] = {}

    @property
    def max_tokens(self) -> int | None:
        """The wrapped manager's declared answer limit (``AnswerLimit``), else ``None``."""
        return self.llm.max_tokens if isinstance(self.llm, AnswerLimit) else None

    def complete(
        self,
        messages: Sequence[Mapping[str, str]],
        *,
        json_schema: Mapping[str, Any] | None = None,
        max_tokens: int | None = None,
    ) -> Any:
        slot = self.usage.setdefault(self.phase, PhaseUsage())
        slot.llm_calls += 1
        result = self.llm.complete(messages, json_schema=json_schema, max_tokens=max_tokens)
        slot.prompt_tokens += int(getattr(result, "prompt_tokens", 0) or 0)
        slot.completion_tokens += int(getattr(result, "completion_tokens", 0) or 0)
        return result

    def get(self, phase: str) -> PhaseUsage:
        return self.usage.get(phase, PhaseUsage())


def cached_prompt_tokens(memory: Any) -> int:
    """Prompt tokens the endpoint served from its prefix cache so far, as it reported them."""
    llm = memory.backends.memory_manager()
    return int(llm.cache_stats()["cached_prompt_tokens"]) if llm is not None else 0


def _chat_requests(server: Any) -> int:
    """Chat requests the loopback server has received so far (0 without a server)."""
    return len(server.chat_requests) if server is not None else 0


# ---------------------------------------------------------------------------------------------
# A competent scripted model (for the loopback server)
# ---------------------------------------------------------------------------------------------

_LINE = re.compile(r"^(\d+) (.*?): (.*)$")
_ROLE = re.compile(r"\s*\((user|assistant|system|tool)\)$")
_TOPIC = re.compile(r"^Topic (t\d+)$")
_MEMORY = re.compile(r'^(\d+) \S+ (".*")$')
_CHECK = re.compile(r"^(\d+) <- ([\d, ]+)$")


def _schema(body: Mapping[str, Any]) -> Mapping[str, Any]:
    rf = body.get("response_format") or {}
    schema = rf.get("json_schema", {}).get("schema", {}) if isinstance(rf, Mapping) else {}
    return schema if isinstance(schema, Mapping) else {}


def _prompt(body: Mapping[str, Any]) -> str:
    return "\n".join(
        m["content"] for m in body.get("messages") or () if isinstance(m.get("content"), str)
    )


def _unquote(text: str) -> str:
    """A JSON-quoted message text or speaker name as plain text (other text unchanged)."""
    if text.startswith('"'):
        try:
            value = json.loads(text)
        except ValueError:
            return text
        return " ".join(str(value).split())
    return text


# ---------------------------------------------------------------------------------------------
# Tokens as OpenAI bills them
# ---------------------------------------------------------------------------------------------


def billed_prompt_tokens(body: Mapping[str, Any], encoding: Any) -> int:
    """Prompt tokens of a chat request as OpenAI bills them: 3 + the sum over the messages of
    (3 + the content's cl100k tokens), plus the tokens of the JSON schema sent."""
    total = 3
    for message in body.get("messages") or ():
        content = message.get("content") if isinstance(message, Mapping) else None
        total += 3 + len(encoding.encode(content if isinstance(content, str) else ""))
    schema = _schema(body)
    if schema:
        total += len(encoding.encode(json.dumps(schema)))
    return total


class Billed:
    """A responder wrapper whose replies carry cl100k prompt and completion token counts."""

    def __init__(self, responder: Callable[[Mapping[str, Any]], Any]) -> None:
        self.responder = responder
        self.encoding = cl100k()

    def __call__(self, body: Mapping[str, Any]) -> Any:
        from ..testing.openai_server import Reply

        text = self.responder(body)
        if not isinstance(text, str):
            return text
        return Reply(
            text,
            prompt_tokens=billed_prompt_tokens(body, self.encoding),
            completion_tokens=len(self.encoding.encode(text)),
        )


# ---------------------------------------------------------------------------------------------
# A competent scripted model (for the loopback server)
# ---------------------------------------------------------------------------------------------


def _extraction_answer(body: Mapping[str, Any], schema: Mapping[str, Any]) -> str:
    props = schema.get("properties", {})
    fact_props = props.get("facts", {}).get("items", {}).get("properties", {})
    facts: list[dict[str, Any]] = []
    topics: list[str] = []
    for line in _prompt(body).splitlines():
        topic = _TOPIC.match(line.strip())
        if topic:
            topics.append(topic.group(1))
            continue
        match = _LINE.match(line) if line[:1].isdigit() else None
        if match:
            speaker = _unquote(_ROLE.sub("", match.group(2)).strip())
            facts.append(
                {
                    "text": f"{speaker}: {_unquote(match.group(3).strip())}",
                    "sources": [int(match.group(1))],
                    "importance": 0.8,
                }
            )
    if "keywords" in fact_props:
        for fact in facts:
            words = re.findall(r"[A-Za-z][A-Za-z'-]{3,}", fact["text"])
            fact |= {"keywords": words[:3], "entities": [], "category": "other"}
    answer: dict[str, Any] = {"facts": facts}
    if "topics" in props:
        answer["topics"] = [{"topic": t, "summary": "a conversation topic"} for t in topics]
    return json.dumps(answer)


def shown_checks(prompt: str) -> tuple[dict[int, str], list[tuple[int, list[int]]]]:
    """The memories (number -> text) and checks (old, [newer, ...]) of an update prompt."""
    memories: dict[int, str] = {}
    checks: list[tuple[int, list[int]]] = []
    for line in prompt.splitlines():
        if m := _MEMORY.match(line):
            try:
                memories[int(m.group(1))] = json.loads(m.group(2))
            except ValueError:
                continue
        elif m := _CHECK.match(line):
            newer = [int(x) for x in m.group(2).replace(" ", "").split(",") if x]
            checks.append((int(m.group(1)), newer))
    return memories, checks


class ScriptedResponder:
    """Answers LightMem's requests the way a competent, conservative model would.

    Extraction (``lightmem_extraction``): one fact per message line shown, ``"<speaker>:
    <text>"`` citing that line's number, importance 0.8, with the metadata and topic summaries
    the schema asks for. Update decisions (``lightmem_update_decisions``): ``update`` for
    ``update_fraction`` of the (old, newer) pairs shown in each call, rounded up, chosen by a
    hash of their texts (the old text joined with the newer one), nothing else; every such
    decision is recorded in ``updates`` as ``(old text, new text)`` and the pairs shown are
    counted in ``pairs_shown``. Anything else: ``{}``.
    """

    def __init__(self, update_fraction: float = 0.0) -> None:
        self.update_fraction = update_fraction
        self.pairs_shown = 0
        self.update_calls = 0
        self.updates: list[tuple[str, str]] = []

    def _rank(self, old: str, new: str) -> int:
        return int.from_bytes(hashlib.sha1(f"{old}\x00{new}".encode()).digest()[:4], "big")

    def __call__(self, body: Mapping[str, Any]) -> str:
        schema = _schema(body)
        title = schema.get("title", "")
        if title == "lightmem_extraction":
            return _extraction_answer(body, schema)
        if title != "lightmem_update_decisions":
            return "{}"
        self.update_calls += 1
        memories, checks = shown_checks(_prompt(body))
        pairs = [(old, new) for old, newer in checks for new in newer]
        self.pairs_shown += len(pairs)
        share = math.ceil(self.update_fraction * len(pairs)) if self.update_fraction else 0
        picked = sorted(pairs, key=lambda p: self._rank(memories[p[0]], memories[p[1]]))[:share]
        decisions = []
        for old, newer in checks:
            chosen = [n for n in newer if (old, n) in picked]
            if chosen:
                merged = f"{memories[old]} (later: {memories[chosen[0]]})"
                decisions.append({"id": old, "action": "update", "new_memory": merged, "by": 0})
                self.updates.append((memories[old], merged))
        return json.dumps({"decisions": decisions})


def scripted_responder(body: Mapping[str, Any]) -> str:
    """:class:`ScriptedResponder` that decides ``ignore`` for every update check."""
    return ScriptedResponder()(body)


# ---------------------------------------------------------------------------------------------
# LightMem
# ---------------------------------------------------------------------------------------------

#: How ``lightmem_economy`` feeds a conversation: one ``add_memory`` per session or per turn.
PATTERNS = ("session", "turn")


def lightmem_economy(
    conv: Conversation,
    config: Mapping[str, Any],
    *,
    memory_dir: str | Path,
    host: Any = None,
    server: Any = None,
    pattern: str = "session",
    update: bool = True,
) -> tuple[dict[str, Any], Any]:
    """Ingest ``conv`` with LightMem (and run the offline update); return its usage and the open
    memory (the caller closes it; the reference reuses its LLM and embedder).

    ``pattern``: ``"session"`` (one ``add_memory`` per session) or ``"turn"`` (one per turn, the
    session's last turn with ``force_segment``, as an agent adds messages while it talks).
    ``update=False`` leaves the offline pass to the caller.
    """
    if pattern not in PATTERNS:
        raise ValueError(f"pattern must be one of {', '.join(PATTERNS)}, got {pattern!r}")
    from ..memory import LightMemory

    memory = LightMemory({**dict(config), "memory_dir": str(memory_dir)}, host=host)
    try:
        if memory.backends.get("memory_manager") is None:
            raise ValueError("the LLM economy needs a configuration with a memory_manager")
        memory.warm_up()  # load the model outside the timings
        requests0 = _chat_requests(server)
        cached0 = cached_prompt_tokens(memory)
        t0 = time.perf_counter()
        batches = 0
        last = len(conv.sessions) - 1
        calls = 0
        for i, session in enumerate(conv.sessions):
            if pattern == "session":
                groups = [list(session.messages)]
            else:
                groups = [[m] for m in session.messages]
            for j, group in enumerate(groups):
                end = j == len(groups) - 1
                result = memory.add_memory(
                    group, force_segment=end, force_extract=end and i == last
                )
                batches += result.batches_extracted
                calls += 1
        ingest_s = time.perf_counter() - t0
        requests1 = _chat_requests(server)
        cached1 = cached_prompt_tokens(memory)
        queued = 0
        changes: list[Any] = []
        t1 = time.perf_counter()
        if update and memory.config.update == "offline":
            queued = memory.construct_update_queue_all_entries()
            changes = memory.offline_update_all_entries()
        update_s = time.perf_counter() - t1
        requests2 = _chat_requests(server)
        cached2 = cached_prompt_tokens(memory)
        stats = memory.get_token_statistics()
        ops = stats["by_operation"]
        extract = PhaseUsage.of(ops.get("extract"))
        updating = PhaseUsage.of(ops.get("update"))
        report: dict[str, Any] = {
            "pattern": pattern,
            "add_memory_calls": calls,
            "ingest": extract.as_dict(),
            "update": updating.as_dict(),
            "total": (extract + updating).as_dict(),
            "batches_extracted": batches,
            "batches_pending": len(memory.pending_batches()),
            "entries": len(memory.get_all()),
            "update_queue": queued,
            "update_changes": len(changes),
            "updated_texts": sorted(c.new_memory for c in changes if c.action == "update"),
            "ingest_s": round(ingest_s, 3),
            "update_s": round(update_s, 3),
            "kv_cache": bool(memory.config.kv_cache),
            "cached_prompt_tokens": {"ingest": cached1 - cached0, "update": cached2 - cached1},
        }
        if server is not None:
            report["server_requests"] = {
                "ingest": requests1 - requests0,
                "update": requests2 - requests1,
            }
        return report, memory
    except BaseException:
        memory.close()
        raise


# ---------------------------------------------------------------------------------------------
# The per-message reference
# ---------------------------------------------------------------------------------------------


class _FactIndex:
    """The reference's own memory: facts and their unit vectors, brute-force cosine search."""

    def __init__(self, embedder: Any) -> None:
        import numpy as np

        self._np = np
        self.embedder = embedder
        self.embed_calls = 0
        self.entries: dict[str, MemoryEntry] = {}
        self.vectors: dict[str, Any] = {}

    def _embed(self, text: str) -> Any:
        self.embed_calls += 1
        vector = self._np.asarray(self.embedder.embed([text])[0], dtype="float32")
        norm = float(self._np.linalg.norm(vector))
        return vector / norm if norm > 0 else vector

    def nearest(self, vector: Any, k: int) -> list[tuple[MemoryEntry, float]]:
        if not self.entries:
            return []
        ids = list(self.vectors)
        scores = self._np.stack([self.vectors[i] for i in ids]) @ vector
        order = self._np.argsort(-scores)[:k]
        return [(self.entries[ids[j]], float(scores[j])) for j in order]

    def put(self, entry: MemoryEntry, vector: Any = None) -> None:
        self.entries[entry.id] = entry
        self.vectors[entry.id] = vector if vector is not None else self._embed(entry.memory)

    def remove(self, entry_id: str) -> None:
        self.entries.pop(entry_id, None)
        self.vectors.pop(entry_id, None)


def reference_economy(
    conv: Conversation,
    llm: Any,
    embedder: Any,
    *,
    messages_use: str = "user_only",
    metadata_generate: bool = True,
    text_summary: bool = True,
    extract_threshold: float = 0.1,
    prompts: Any = None,
    top_k: int = 5,
    server: Any = None,
) -> dict[str, Any]:
    """Run the per-message reference strategy on ``conv``; return its calls and tokens.

    ``llm``: a memory manager (``complete``); ``embedder``: anything with ``embed(texts)``.
    """
    from ..llm.extraction import extract_facts
    from ..llm.update import reconcile_fact
    from ..messages import normalize_messages

    counting = CountingLLM(llm)
    index = _FactIndex(embedder)
    requests0 = _chat_requests(server)
    t0 = time.perf_counter()
    messages = 0
    facts = 0
    decisions = {"update": 0, "delete": 0}
    for session in conv.sessions:
        for message in normalize_messages(list(session.messages), Scope()):
            messages += 1
            counting.phase = "extract"
            result = extract_facts(
                counting,
                [Segment(topic_id=messages, messages=(message,))],
                messages_use=messages_use,
                metadata_generate=metadata_generate,
                text_summary=text_summary,
                extract_threshold=extract_threshold,
                prompts=prompts,
            )
            counting.phase = "update"
            for fact in result.facts:
                facts += 1
                vector = index._embed(fact.text)
                neighbours = index.nearest(vector, top_k)
                for decision in reconcile_fact(
                    counting,
                    fact.text,
                    neighbours,
                    prompts=prompts,
                    fact_time_stamp=fact.time_stamp,
                ):
                    decisions[decision.action] += 1
                    if decision.action == "delete":
                        index.remove(decision.target_id)
                    elif decision.new_memory:
                        old = index.entries[decision.target_id]
                        index.put(attrs.evolve(old, memory=decision.new_memory))
                index.put(
                    MemoryEntry(
                        id=f"ref-{facts}",
                        memory=fact.text,
                        source_message_ids=fact.source_message_ids,
                        time_stamp=fact.time_stamp,
                    ),
                    vector,
                )
    seconds = time.perf_counter() - t0
    extract, update = counting.get("extract"), counting.get("update")
    report: dict[str, Any] = {
        "ingest": extract.as_dict(),
        "update": update.as_dict(),
        "total": (extract + update).as_dict(),
        "messages": messages,
        "facts": facts,
        "entries": len(index.entries),
        "decisions": decisions,
        "embed_calls": index.embed_calls,
        "seconds": round(seconds, 3),
    }
    if server is not None:
        report["server_requests"] = _chat_requests(server) - requests0
    return report


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


def _ratio(num: float, den: float) -> float | None:
    return round(num / den, 2) if den else None


def _ratios(reference: Mapping[str, Any], lightmem: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "calls": _ratio(reference["total"]["llm_calls"], lightmem["total"]["llm_calls"]),
        "tokens": _ratio(reference["total"]["total_tokens"], lightmem["total"]["total_tokens"]),
        "ingest_calls": _ratio(reference["ingest"]["llm_calls"], lightmem["ingest"]["llm_calls"]),
        "ingest_tokens": _ratio(
            reference["ingest"]["total_tokens"], lightmem["ingest"]["total_tokens"]
        ),
    }


def _sum(items: Iterable[Mapping[str, Any]], phase: str) -> dict[str, int]:
    total = PhaseUsage()
    for item in items:
        total = total + PhaseUsage.of(item[phase])
    return total.as_dict()


def measure_economy(
    conversations: Sequence[Conversation],
    config: Mapping[str, Any],
    *,
    host: Any = None,
    server: Any = None,
    top_k: int = 5,
    reference: bool = True,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """LightMem and (unless ``reference`` is false) the per-message reference on each
    conversation, each LightMem run in a fresh temporary memory directory."""
    from ..plugins import PluginHost

    host = host or PluginHost()
    say = progress or (lambda text: None)
    samples: list[dict[str, Any]] = []
    model = None
    for n, conv in enumerate(conversations, start=1):
        tag = f"[{n}/{len(conversations)} {conv.sample_id}]"
        with tempfile.TemporaryDirectory(prefix="lightmem-economy-") as tmp:
            say(f"{tag} LightMem: {len(conv.messages)} turns in {len(conv.sessions)} sessions")
            lm, memory = lightmem_economy(
                conv, config, memory_dir=Path(tmp) / "lightmem", host=host, server=server
            )
            try:
                llm = memory.backends.get("memory_manager")
                model = model or getattr(llm, "model_name", None)
                sample: dict[str, Any] = {
                    "sample_id": conv.sample_id,
                    "sessions": len(conv.sessions),
                    "turns": len(conv.messages),
                    "lightmem": lm,
                }
                if reference:
                    if memory.embedder is None:
                        raise ValueError(
                            "the per-message reference needs a text_embedder in the configuration"
                        )
                    say(f"{tag} reference: one extraction per message, one update per fact")
                    c = memory.config
                    ref = memory.run_operation(  # booked apart from LightMem's own phases
                        "reference",
                        functools.partial(
                            reference_economy,
                            conv,
                            llm,
                            memory.embedder,
                            messages_use=c.messages_use,
                            metadata_generate=c.metadata_generate,
                            text_summary=c.text_summary,
                            extract_threshold=c.extract_threshold,
                            prompts=memory.prompts,
                            top_k=top_k,
                            server=server,
                        ),
                    )
                    sample["reference"] = ref
                    sample["ratio"] = _ratios(ref, lm)
            finally:
                memory.close()
        samples.append(sample)
        line = f"{tag} LightMem {lm['total']['llm_calls']} calls"
        if reference:
            line += (
                f", reference {sample['reference']['total']['llm_calls']} calls "
                f"({sample['ratio']['calls']}x)"
            )
        say(line)
    lms = [s["lightmem"] for s in samples]
    totals: dict[str, Any] = {
        "lightmem": {p: _sum(lms, p) for p in ("ingest", "update", "total")},
    }
    if reference:
        refs = [s["reference"] for s in samples]
        totals["reference"] = {p: _sum(refs, p) for p in ("ingest", "update", "total")}
        totals["ratio"] = _ratios(totals["reference"], totals["lightmem"])
    count = len(samples) or 1
    per_conv = {
        who: {k: round(v / count, 1) for k, v in totals[who]["total"].items()}
        for who in ("lightmem", "reference")
        if who in totals
    }
    return {
        "benchmark": "llm_economy",
        "model": model,
        "top_k": top_k,
        "samples": samples,
        "totals": totals,
        "per_conversation_mean": per_conv,
    }
