"""LightMem configuration: the original LightMem dictionary, structured strictly with cattrs."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import attrs
import cattrs
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError, IterableValidationError
from cattrs.gen import make_dict_structure_fn
from lightmem_hookspecs import BACKEND_KINDS, RETRIEVER_KINDS
from lightmem_hookspecs.options import (
    OptionError,
    at_least,
    non_negative,
    positive,
    unit_interval,
)

from .errors import (
    BackendNotFoundError,
    ConfigError,
    ConfigProblem,
    DuplicateBackendError,
    NotImplementedYetError,
)

DEFAULT_MEMORY_DIR = "./lightmem_data"
#: ``indexing.max_entry_words``: passages of messages longer than this (see IndexingOptions).
DEFAULT_MAX_ENTRY_WORDS = 60

MessagesUse = Literal["user_only", "assistant_only", "hybrid"]
Strategy = Literal["embedding", "context", "hybrid"]
UpdateMode = Literal["online", "offline"]
#: ``true`` / ``"offline"``: the memory manager reuses the KV state of its prompts' static
#: prefix (lossless); ``"online"`` (pre-computing retrieved memories before Q&A) is refused.
KVCacheMode = bool | Literal["offline", "online"]


#: Names whose values are secrets: ``api_key``, ``token``, ... and the HTTP headers that carry
#: credentials (``Authorization``, ``api-key``, ``X-Api-Key``, ``Cookie``).
_SECRET_NAME = re.compile(
    r"(^|[_-])(key|secret|token|password|passwd|credential)$"
    r"|^(proxy-)?authorization$|^(set-)?cookie$",
    re.I,
)


#: A password inside a connection string: ``scheme://user:PASSWORD@``, ``password=PASSWORD``.
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/?#@\s]*):[^@/?#\s]*@")
_KEYWORD_PASSWORD = re.compile(r"(?P<head>\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&]+)", re.I)


def mask_secrets(value: Any) -> Any:
    """A copy of ``value`` with every mapping value under a secret-looking key masked, and the
    password of any connection string in it (``postgresql://user:***@host``)."""
    if isinstance(value, str):
        value = _URL_PASSWORD.sub(r"\g<head>:***@", value)
        return _KEYWORD_PASSWORD.sub(r"\g<head>***", value)
    if isinstance(value, Mapping):
        return {
            k: "***"
            if isinstance(k, str) and _SECRET_NAME.search(k) and v is not None
            else mask_secrets(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [mask_secrets(v) for v in value]
    return value


def _masked_repr(value: Any) -> str:
    return repr(mask_secrets(value))


@attrs.frozen
class BackendSpec:
    """A backend named by ``model_name`` with its options under ``configs`` (as in LightMem).

    ``repr`` masks options whose name looks secret (``api_key``, ``token``, ...).
    """

    model_name: str
    configs: dict[str, Any] | None = attrs.field(default=None, repr=_masked_repr)


def _path_text(_inst: Any, attribute: attrs.Attribute, value: str | None) -> None:
    if value is None:
        return
    if not value.strip() or "\x00" in value:
        raise OptionError.at(attribute, f"expected a folder or file path, got {value!r}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise OptionError.at(attribute, f"cannot be encoded as UTF-8: {value!r}") from None


@attrs.frozen
class HybridWeights:
    """Weights of each signal in reciprocal-rank fusion: the shorthand retrieval chain's weights.

    ``rrf_k`` 10 rather than the customary 60: with two signals, agreement near the top should
    count; on the LoCoMo development split it raised evidence recall@10 from 0.667 to 0.722,
    every conversation gaining (docs/evaluation.md). ``graph`` 0.4: with the no-LLM fallback
    graph, 0.2-0.7 all raised recall there and 0.4 did best, at ~325 words (docs/graph.md).
    """

    embedding: float = attrs.field(default=1.0, validator=non_negative)
    context: float = attrs.field(default=1.0, validator=non_negative)
    graph: float = attrs.field(default=0.4, validator=non_negative)
    #: The ``multimodal`` retriever (images, by the query's embedding in the multimodal space),
    #: in the chain when ``multimodal_embedder`` is configured.
    multimodal: float = attrs.field(default=1.0, validator=non_negative)
    rrf_k: int = attrs.field(default=10, validator=positive)


ImageStorage = Literal["copy", "reference"]


@attrs.frozen
class ImageOptions:
    """Image memory (with ``multimodal_embedder``): what images messages may carry.

    ``allowed_roots``: folders a message's image may be a local file under (none: only
    ``data:`` URIs). ``storage``: ``copy`` keeps each image once, by content hash, in
    ``<memory_dir>/images``; ``reference`` keeps the caller's path (the file must stay).
    ``max_bytes``: the largest image accepted. ``formats``: the image formats accepted.
    """

    allowed_roots: list[str] = attrs.field(factory=list)
    storage: ImageStorage = "copy"
    max_bytes: int = attrs.field(default=10 << 20, validator=positive)
    formats: list[str] = attrs.field(factory=lambda: ["PNG", "JPEG", "GIF", "WEBP", "BMP"])


@attrs.frozen
class GraphOptions:
    """How the graph memory is built and walked (``graph``; used when ``graph_mem`` is on).

    ``hops``: relations deep a walk goes from the entities a query names; ``fan_out``: relations
    followed per entity (newest first); ``similarity``: cosine above which a new entity name
    becomes an alias of a stored entity (``null``: names only); ``fallback``: without an LLM,
    build relations from the entry text (the speaker, names, dates, numbers and topic words it
    mentions); ``expand``: how many of the other retrievers' best hits lend their entities to
    the graph search (0: only the entities the query names). See docs/graph.md.
    """

    hops: int = attrs.field(default=2, validator=positive)
    fan_out: int = attrs.field(default=5, validator=positive)
    similarity: float | None = attrs.field(default=0.9, validator=unit_interval)
    fallback: bool = True
    expand: int = attrs.field(default=5, validator=non_negative)


@attrs.frozen
class IndexingOptions:
    """How a message becomes entries when no LLM extracts facts from it.

    ``max_entry_words``: a message longer than this many words is stored as several passage
    entries, each of whole sentences and at most this many words (a sentence longer than that
    is cut between words), each with the message as its source and its place in it
    (``metadata["passage"]``), so a hit returns the passage that matches rather than the whole
    message. ``None``: one entry per message, however long.

    ``next_turn_words``: the lexical index also reads this many words of the turn after the
    entry's message (the reply, when it came within the exchange), beside the turn before it
    (0: not).
    """

    max_entry_words: int | None = attrs.field(default=DEFAULT_MAX_ENTRY_WORDS, validator=positive)
    next_turn_words: int = attrs.field(default=0, validator=non_negative)


@attrs.frozen
class RetrieverSpec:
    """One element of the retrieval chain: a backend that can search, with its fusion weight.

    ``kind`` is ``embedding_retriever`` (queried by the query's embedding), ``context_retriever``
    (queried by text: lexical indexes and third-party retrievers) or ``graph_memory``.
    ``name`` labels the element's score and rank in each hit (``hit.scores[name]``); by default
    ``embedding``, ``context`` and ``graph`` for the first of each kind, else the backend name.
    """

    kind: str
    model_name: str
    configs: dict[str, Any] | None = attrs.field(default=None, repr=_masked_repr)
    weight: float = attrs.field(default=1.0, validator=non_negative)
    name: str | None = None

    @property
    def backend(self) -> BackendSpec:
        return BackendSpec(self.model_name, self.configs)


FusionMethod = Literal["rrf", "weighted"]


@attrs.frozen
class FusionSpec:
    """How the retrievers' ranked lists become one.

    ``rrf``: reciprocal-rank fusion, a hit scores ``sum(weight / (k + rank))``. ``weighted``:
    each retriever's scores are min-max normalised to [0, 1] over its list, and a hit scores
    ``sum(weight * normalised score)``. With one retriever the hits keep its own scores.
    """

    method: FusionMethod = "rrf"
    k: int = attrs.field(default=10, validator=positive)


#: ``retrieval.named_speaker`` of a memory without a ``memory_manager``.
NAMED_SPEAKER = 1.0


@attrs.frozen
class SegmentSpec:
    """How much a hit's segment (``topic_id``: the session or topic it was said in) counts.

    After fusion each hit gains ``weight`` times the summed fused scores of the ``hits`` best
    hits of its segment in the pool: evidence sits in runs of turns of one conversation, so a
    turn whose neighbours in that session also match is likelier to be what is asked about.
    ``weight`` 0 turns it off. On the LoCoMo development split ``weight`` 0.2 and ``hits`` 2
    raised evidence recall@10 in every category, and lowered no LongMemEval question type
    (docs/evaluation.md); more weight gains more on LoCoMo and loses on LongMemEval.
    """

    weight: float = attrs.field(default=0.2, validator=non_negative)
    hits: int = attrs.field(default=2, validator=at_least(1))


@attrs.frozen
class ExchangeSpec:
    """How much a hit's exchange partners count: the turns next to it that another speaker
    said in the same segment (a reply and what it replies to).

    After the named speaker's lists are fused, each hit gains ``share`` times the fused scores
    of the pool's hits at most ``reach`` places before or after it in the store's order of
    entries, of its segment, said by another known speaker; the pool is sorted again. A memory
    of one speaker (``messages_use: user_only`` of a chat with an assistant) has no partners
    and keeps its order. ``share`` 0 turns it off. On the LoCoMo development split ``share``
    0.1 and ``reach`` 2 raised evidence recall@10 from 0.776 to 0.782 (docs/evaluation.md);
    more share lowers multi-hop and open-domain recall.
    """

    share: float = attrs.field(default=0.1, validator=non_negative)
    reach: int = attrs.field(default=2, validator=at_least(1))


@attrs.frozen
class RetrievalConfig:
    """The retrieval chain: retrievers with weights, a fusion step, rerankers in order.

    Left out, ``retrievers`` is built from the original keys (``retrieve_strategy``,
    ``embedding_retriever``, ``context_retriever``, ``graph_mem`` + ``graph_memory``) and
    ``fusion`` from ``hybrid_weights``. ``pool_size`` is how many hits each retriever returns
    and the rerankers receive (default ``max(5 * limit, 50)``).

    ``named_speaker``: when the query names exactly one speaker of the pool's entries (and the
    pool holds more than one), each vector and text retriever's list kept to that speaker's
    hits (ranked among themselves) joins the fusion with ``named_speaker`` times the
    retriever's weight (0: off): the name works as a boost, not as one more query term.
    ``exchange``: the exchange partners' share (:class:`ExchangeSpec`), then ``segments``:
    the segment boost (:class:`SegmentSpec`), both after fusion. Left out, all three are on
    for a memory without a ``memory_manager`` (its entries are the messages, where they were
    measured: ``named_speaker`` 1.0, ``exchange.share`` 0.1, ``segments.weight`` 0.2) and off
    with one.
    """

    retrievers: list[RetrieverSpec] | None = None
    fusion: FusionSpec | None = None
    rerankers: list[BackendSpec] | None = None
    pool_size: int | None = attrs.field(default=None, validator=positive)
    named_speaker: float | None = attrs.field(default=None, validator=non_negative)
    segments: SegmentSpec | None = None
    exchange: ExchangeSpec | None = None


@attrs.frozen
class HookPluginSpec:
    """A hook plugin the memory runs (by its plugin name) with its own options.

    In the configuration a plain string is the plugin name with no options.
    """

    plugin: str
    options: dict[str, Any] | None = attrs.field(default=None, repr=_masked_repr)


@attrs.frozen
class PromptOverrides:
    """Replacement prompt templates; each must keep the placeholders of the default."""

    system: str | None = None
    extraction: str | None = None
    update: str | None = None
    reconcile: str | None = None
    retry: str | None = None


@attrs.frozen
class LightMemConfig:
    """Every key of the original LightMem configuration, plus LightMem's own additions.

    ``None`` for a backend means that stage is off; a key left out takes the embedded default
    (see :func:`apply_defaults`).
    """

    # --- keys of the original LightMem configuration ---
    pre_compress: bool = False
    pre_compressor: BackendSpec | list[BackendSpec] | None = None
    topic_segment: bool = False
    precomp_topic_shared: bool = False
    topic_segmenter: BackendSpec | None = None
    messages_use: MessagesUse = "user_only"
    metadata_generate: bool = True
    text_summary: bool = True
    memory_manager: BackendSpec | None = None
    extract_threshold: float = attrs.field(default=0.1, validator=unit_interval)
    index_strategy: Strategy | None = None
    text_embedder: BackendSpec | None = None
    multimodal_embedder: BackendSpec | None = None
    history_db_path: str | None = attrs.field(default=None, validator=_path_text)
    retrieve_strategy: Strategy | None = None
    context_retriever: BackendSpec | None = None
    embedding_retriever: BackendSpec | None = None
    summary_retriever: BackendSpec | None = None
    update: UpdateMode | None = "offline"
    kv_cache: KVCacheMode = False
    kv_cache_path: str | None = attrs.field(default=None, validator=_path_text)
    graph_mem: bool = False
    version: str = "v1.1"
    logging: dict[str, Any] | None = None
    extraction_mode: Literal["flat", "event"] = "flat"
    # --- LightMem additions ---
    memory_dir: str = attrs.field(default=DEFAULT_MEMORY_DIR, validator=_path_text)
    #: The system of record (``None``: the built-in ``sqlite`` store in ``memory_dir``).
    record_store: BackendSpec | None = None
    graph_memory: BackendSpec | None = None
    graph: GraphOptions = attrs.field(factory=GraphOptions)
    images: ImageOptions = attrs.field(factory=ImageOptions)
    indexing: IndexingOptions = attrs.field(factory=IndexingOptions)
    reranker: BackendSpec | list[BackendSpec] | None = None
    retrieval: RetrievalConfig = attrs.field(factory=RetrievalConfig)
    hooks: list[HookPluginSpec] | Literal["all"] | None = None
    online_update_top_k: int = attrs.field(default=5, validator=positive)
    online_update_threshold: float = attrs.field(default=0.5, validator=unit_interval)
    sensory_buffer_tokens: int = attrs.field(default=512, validator=positive)
    short_term_buffer_tokens: int = attrs.field(default=2048, validator=positive)
    #: New entries' vectors are computed together once this many wait (and always before a
    #: search, an update pass or close); 1: each extraction batch embeds its own at once.
    vector_batch_texts: int = attrs.field(default=256, validator=positive)
    #: Each entry's vector is its memory's embedding plus this much of its speaker's name's
    #: (both unit length; 0: the memory alone). Questions name people.
    speaker_vector_weight: float = attrs.field(default=1.0, validator=non_negative)
    #: LLM tokens (prompt + answer) this memory may spend per hour / per day; past it,
    #: extraction waits with the messages kept in the journal (``None``: no limit).
    llm_tokens_per_hour: int | None = attrs.field(default=None, validator=positive)
    llm_tokens_per_day: int | None = attrs.field(default=None, validator=positive)
    #: LLM tokens one ``add_memory`` call may spend (``add_memory(token_budget=...)`` overrides
    #: it per call); batches past it are held in the journal for the next call or ``retry()``.
    llm_tokens_per_add: int | None = attrs.field(default=None, validator=positive)
    hybrid_weights: HybridWeights = attrs.field(factory=HybridWeights)
    prompts: PromptOverrides = attrs.field(factory=PromptOverrides)
    #: A search, ``get_all`` or ``add`` that names no user, agent or run id is an error
    #: (:class:`~lightmem_core.errors.ScopeRequiredError`) instead of covering every scope.
    require_scope: bool = False
    #: Characters a message's content may hold (``None``: no limit). A longer message is
    #: refused with an ``InputError`` naming it and the limit, before anything is written;
    #: with ``truncate_long_messages`` its first ``max_message_chars`` characters are kept.
    max_message_chars: int | None = attrs.field(default=100_000, validator=positive)
    truncate_long_messages: bool = False
    #: Retry failed extraction batches in a background thread once their backoff has passed
    #: (``retry()`` retries at once either way).
    background_retry: bool = True
    #: Seconds before the first retry of a failed batch; doubled after each failure, up to
    #: ``retry_backoff_max``.
    retry_backoff: float = attrs.field(default=5.0, validator=non_negative)
    retry_backoff_max: float = attrs.field(default=300.0, validator=non_negative)
    #: Seconds a memory lives after it is stored, unless its messages carry ``expires_at``
    #: (unset: memories do not expire). Expired ones are not returned; the update pass
    #: retires them.
    memory_ttl: float | None = attrs.field(default=None, validator=at_least(1.0))
    #: Extraction calls to the LLM in flight at once across scopes (adds of different scopes
    #: extract side by side; the adds of one scope stay one at a time, in order).
    llm_concurrency: int = attrs.field(default=4, validator=positive)
    #: Seconds a new ``LightMemory`` waits for the memory directory's owner to close it
    #: (0: fail at once with :class:`~lightmem_core.errors.MemoryDirInUseError`).
    lock_timeout: float = attrs.field(default=0.0, validator=non_negative)

    def pre_compressors(self) -> list[BackendSpec]:
        if not self.pre_compress or self.pre_compressor is None:
            return []
        if isinstance(self.pre_compressor, list):
            return list(self.pre_compressor)
        return [self.pre_compressor]

    def rerankers(self) -> list[tuple[str, BackendSpec]]:
        """``(config path, spec)`` of each reranker, in the order they run."""
        if self.retrieval.rerankers is not None:
            return [
                (f"$.retrieval.rerankers[{i}]", s) for i, s in enumerate(self.retrieval.rerankers)
            ]
        if isinstance(self.reranker, list):
            return [(f"$.reranker[{i}]", s) for i, s in enumerate(self.reranker)]
        return [("$.reranker", self.reranker)] if self.reranker is not None else []

    def fusion(self) -> FusionSpec:
        if self.retrieval.fusion is not None:
            return self.retrieval.fusion
        return FusionSpec("rrf", self.hybrid_weights.rrf_k)

    def retrievers(self) -> list[ChainElement]:
        """The retrieval chain's elements, in order, each with its label, path and weight."""
        return retrieval_chain(self)

    @property
    def kv_cache_dir(self) -> Path:
        """Where the memory manager keeps KV cache files (``kv_cache_path`` or the memory dir's
        ``kv_cache`` folder)."""
        if self.kv_cache_path:
            return Path(self.kv_cache_path)
        return Path(self.memory_dir) / "kv_cache"

    @property
    def db_path(self) -> Path:
        if self.history_db_path:
            return Path(self.history_db_path)
        return Path(self.memory_dir) / "history.db"


#: Keys whose feature is not built yet: refused when set to anything but their "off" value.
NOT_IMPLEMENTED: dict[str, tuple[Any, str]] = {
    "summary_retriever": (None, "a separate summary retriever"),
    "logging": (None, "the `logging` section (use Python's logging configuration instead)"),
    "extraction_mode": ("flat", "event-level extraction (`extraction_mode: event`)"),
}

#: The embedded default stack (no API key, no server, no download beyond PyPI).
DEFAULT_BACKENDS: dict[str, BackendSpec] = {
    "text_embedder": BackendSpec("huggingface"),
    "embedding_retriever": BackendSpec("qdrant"),
    "context_retriever": BackendSpec("sqlite-bm25"),
}
#: The reranker chain of a memory with no ``memory_manager`` when none is configured.
DEFAULT_RERANKER = "newer_first"


# ---------------------------------------------------------------------------------------------
# The converter: strict scalars, unknown keys forbidden, errors with paths.
# ---------------------------------------------------------------------------------------------


class _WrongType(TypeError):
    """A scalar of the wrong type; the value is shown unless the field looks secret."""

    def __init__(self, expected: str, value: Any) -> None:
        self.expected, self.value = expected, value
        super().__init__(f"expected {expected}, got {value!r}")

    def problem(self, path: str, name: str | None) -> ConfigProblem:
        secret = name is not None and _SECRET_NAME.search(name)
        shown = type(self.value).__name__ if secret else repr(self.value)
        return ConfigProblem(path, f"expected {self.expected}, got {shown}")


def _strict(kind: type, accept: tuple[type, ...], reject: tuple[type, ...] = ()):
    def structure(value: Any, _type: Any) -> Any:
        if isinstance(value, reject) or not isinstance(value, accept):
            raise _WrongType(kind.__name__, value)
        return kind(value)

    return structure


def make_converter() -> cattrs.Converter:
    """The one converter LightMem structures configuration with."""
    converter = cattrs.Converter(forbid_extra_keys=True)
    converter.register_structure_hook(str, _strict(str, (str,)))
    converter.register_structure_hook(bool, _strict(bool, (bool,)))
    converter.register_structure_hook(int, _strict(int, (int,), (bool,)))
    converter.register_structure_hook(float, _strict(float, (int, float), (bool,)))

    def structure_any(value: Any, _type: Any) -> Any:
        return value

    converter.register_structure_hook(Any, structure_any)

    backend_fields = make_dict_structure_fn(BackendSpec, converter, _cattrs_forbid_extra_keys=True)

    def structure_backend(value: Any, _type: Any) -> BackendSpec:
        if isinstance(value, str):  # `reranker: keyword-boost` names a backend without options
            return BackendSpec(value)
        if not isinstance(value, Mapping):
            raise _WrongType("a backend name or {model_name: name, configs: {...}}", value)
        return backend_fields(value, BackendSpec)

    converter.register_structure_hook(BackendSpec, structure_backend)

    def structure_pre_compressor(value: Any, _type: Any) -> BackendSpec | list[BackendSpec] | None:
        if value is None:
            return None
        if isinstance(value, list):
            return converter.structure(value, list[BackendSpec])
        return converter.structure(value, BackendSpec)

    converter.register_structure_hook(
        BackendSpec | list[BackendSpec] | None, structure_pre_compressor
    )

    hook_fields = make_dict_structure_fn(HookPluginSpec, converter, _cattrs_forbid_extra_keys=True)

    def structure_hook_plugin(value: Any, _type: Any) -> HookPluginSpec:
        if isinstance(value, str):
            return HookPluginSpec(value)
        if not isinstance(value, Mapping):
            raise _WrongType("a plugin name or {plugin: name, options: {...}}", value)
        return hook_fields(value, HookPluginSpec)

    converter.register_structure_hook(HookPluginSpec, structure_hook_plugin)

    def structure_hooks(value: Any, _type: Any) -> list[HookPluginSpec] | str | None:
        if value is None or value == "all":
            return value
        if isinstance(value, str) or not isinstance(value, list):
            raise _WrongType('"all" or a list of hook plugin names', value)
        return converter.structure(value, list[HookPluginSpec])

    converter.register_structure_hook(list[HookPluginSpec] | Literal["all"] | None, structure_hooks)

    def structure_kv_cache(value: Any, _type: Any) -> bool | str:
        if isinstance(value, bool) or value in ("offline", "online"):
            return value
        raise _WrongType('true, false, "offline" or "online"', value)

    converter.register_structure_hook(KVCacheMode, structure_kv_cache)
    return converter


CONVERTER = make_converter()


def _leaf_problems(exc: BaseException, path: str, name: str | None) -> list[ConfigProblem]:
    """The problem one cattrs leaf exception reports at ``path`` (``name``: its key, if any)."""
    if isinstance(exc, ForbiddenExtraKeysError):
        cls = exc.cl
        names = [f.name for f in attrs.fields(cls)] if attrs.has(cls) else []
        keys = ", ".join(_with_suggestion(k, names) for k in sorted(exc.extra_fields))
        return [ConfigProblem(path, f"unknown key(s) {keys}", f"allowed keys: {', '.join(names)}")]
    if isinstance(exc, KeyError):
        return [ConfigProblem(path, "required key missing")]
    if isinstance(exc, _WrongType):
        return [exc.problem(path, name)]
    if isinstance(exc, OptionError):
        # a shared validator, raised while the class was built: it names its option
        where = f"{path}.{exc.option}{exc.within}" if exc.option else path
        return [ConfigProblem(where, exc.message, exc.suggestion)]
    msg = str(exc)
    if isinstance(exc, TypeError | ValueError) and msg.startswith("expected"):
        return [ConfigProblem(path, msg)]
    literal = re.match(r"(.*) not in literal typing\.Literal\[(.*)\]$", msg)
    if literal:
        return [
            ConfigProblem(path, f"expected one of {literal.group(2)}, got {literal.group(1)!r}")
        ]
    if isinstance(exc, ValueError | TypeError):
        # another validator (or __attrs_post_init__) refused a value while the class was built
        return [ConfigProblem(path, msg)]
    return [ConfigProblem(path, f"{type(exc).__name__}: {msg}")]


def _with_suggestion(key: str, known: Sequence[str]) -> str:
    """``key``, with the known key it most likely misspells: ``retreive_strategy (did you mean
    retrieve_strategy?)``."""
    import difflib

    close = difflib.get_close_matches(key, known, n=1, cutoff=0.75)
    return f"{key} (did you mean {close[0]}?)" if close else key


def format_errors(
    exc: BaseException, path: str = "$", name: str | None = None
) -> list[ConfigProblem]:
    """The problems a cattrs exception group reports, each at its ``$.path``."""
    if isinstance(exc, ClassValidationError | IterableValidationError):
        problems: list[ConfigProblem] = []
        if isinstance(exc, ClassValidationError):
            with_notes, without = exc.group_exceptions()
            for sub, note in with_notes:
                key = getattr(note, "name", None)
                index = getattr(note, "index", None)
                sub_path = f"{path}.{key}" if key is not None else f"{path}[{index!r}]"
                problems.extend(format_errors(sub, sub_path, key))
            for sub in without:
                problems.extend(format_errors(sub, path, name))
        else:
            items, rest = exc.group_exceptions()
            for sub, item_note in items:
                problems.extend(format_errors(sub, f"{path}[{item_note.index!r}]", name))
            for sub in rest:
                problems.extend(format_errors(sub, path, name))
        return problems
    if isinstance(exc, ExceptionGroup):
        problems = []
        for sub in exc.exceptions:
            problems.extend(format_errors(sub, path, name))
        return problems
    return _leaf_problems(exc, path, name)


def structure(data: Any, cls: type, *, path: str = "$", source: str | None = None) -> Any:
    """Structure ``data`` into ``cls``; raise :class:`ConfigError` with one problem each."""
    if attrs.has(cls) and not isinstance(data, Mapping):
        raise ConfigError(
            [ConfigProblem(path, f"expected a mapping, got {type(data).__name__}")], source=source
        )
    if isinstance(data, Mapping):
        bad = [k for k in data if not isinstance(k, str)]
        if bad:
            shown = ", ".join(map(repr, bad[:5]))
            raise ConfigError(
                [ConfigProblem(path, f"keys must be strings, got {shown}")], source=source
            )
    try:
        return CONVERTER.structure(data, cls)
    except Exception as exc:
        problems = _formatted(exc, path)
        # attrs stops at the first validator that fails: structure again without validators
        # and run every validator, so that every problem is reported in one go.
        # Keys already reported (unknown, or of the wrong type) are left out of that pass.
        found: list[ConfigProblem] = []
        with attrs.validators.disabled():
            try:
                unchecked: Any = CONVERTER.structure(_salvage(data, cls, exc), cls)
            except Exception:
                pass  # nothing more to learn than what ``problems`` says
            else:
                found = validator_errors(unchecked, path)
        # A validator's refusal the first pass could only place at its class is placed at its
        # option by the second.
        messages = {p.message for p in found}
        problems = [p for p in problems if not (p.path == path and p.message in messages)]
        raise ConfigError(_unique(problems + found), source=source) from exc


def _salvage(data: Any, cls: type, exc: BaseException) -> Any:
    """``data`` without its unknown keys and the keys whose values ``exc`` already refuses."""
    if not (isinstance(data, Mapping) and attrs.has(cls)):
        return data
    reported = set()
    if isinstance(exc, ClassValidationError):
        with_notes, _without = exc.group_exceptions()
        reported = {getattr(note, "name", None) for _sub, note in with_notes}
    known = {f.name for f in attrs.fields(cls)}
    return {k: v for k, v in data.items() if k in known and k not in reported}


def _formatted(exc: BaseException, path: str) -> list[ConfigProblem]:
    try:
        return format_errors(exc, path)
    except Exception:  # a problem the formatter does not know: keep the bare message
        return [ConfigProblem(path, f"{type(exc).__name__}: {exc}")]


def _unique(problems: list[ConfigProblem]) -> list[ConfigProblem]:
    """``problems`` without repeats; of two about one path, the first (the more precise)."""
    out: list[ConfigProblem] = []
    paths: set[str | None] = set()
    for problem in problems:
        if problem in out or (problem.path in paths and problem.path != "$"):
            continue
        out.append(problem)
        paths.add(problem.path)
    return out


def validator_errors(value: Any, path: str = "$") -> list[ConfigProblem]:
    """Run every attrs validator of ``value`` (an attrs instance, and those it holds in fields,
    lists and mappings) and return one problem per refusal, at its option's path.

    A validator refuses a value by raising :class:`~lightmem_hookspecs.options.OptionError`
    (with a suggestion; ``within`` extends the path into the value), or any ``ValueError`` or
    ``TypeError`` (its text is the message, placed at the option's path).
    """
    problems: list[ConfigProblem] = []
    if attrs.has(type(value)):
        for field in attrs.fields(type(value)):
            item = getattr(value, field.name)
            where = f"{path}.{field.name}"
            if field.validator is not None:
                try:
                    field.validator(value, field, item)
                except OptionError as exc:
                    problems.append(
                        ConfigProblem(f"{where}{exc.within}", exc.message, exc.suggestion)
                    )
                    continue
                except (ValueError, TypeError) as exc:
                    problems.append(ConfigProblem(where, _foreign_message(exc, field.name)))
                    continue
            problems += validator_errors(item, where)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            problems += validator_errors(item, f"{path}[{i}]")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            problems += validator_errors(item, f"{path}.{key}")
    return problems


def _foreign_message(exc: BaseException, name: str) -> str:
    """The text of a validator's ``ValueError`` that is not an ``OptionError``; attrs' own
    validators (``attrs.validators.ge``, ...) start theirs with the quoted option name, which
    the path already says."""
    message = str(exc)
    quoted = f"'{name}' "
    return message[len(quoted) :] if message.startswith(quoted) else message


def parse_config(
    data: Mapping[str, Any] | LightMemConfig | None, *, source: str | None = None
) -> LightMemConfig:
    """Structure a configuration mapping and refuse keys whose feature is not built yet."""
    if isinstance(data, LightMemConfig):
        config = data
        raw: Mapping[str, Any] = {}
    else:
        if data is not None and not isinstance(data, Mapping):
            raise ConfigError(
                ConfigProblem(
                    "$",
                    f"expected a mapping (a configuration dictionary), got {type(data).__name__}",
                ),
                source=source,
            )
        raw = dict(data or {})
        config = structure(raw, LightMemConfig, source=source)
    problems: list[ConfigProblem] = []
    for key, (off_value, feature) in NOT_IMPLEMENTED.items():
        if getattr(config, key) != off_value:
            problems.append(
                ConfigProblem(
                    f"$.{key}",
                    f"{feature} is not implemented yet in LightMem",
                    f"remove the key or set it to {json.dumps(off_value)}",
                )
            )
    if config.kv_cache == "online":
        problems.append(
            ConfigProblem(
                "$.kv_cache",
                '"online" (pre-computing the KV cache of retrieved memories before a question '
                "is answered; lossy) belongs to the application that answers, not to the "
                "memory, and is not implemented yet in LightMem",
                'set kv_cache to true (or "offline") for the lossless cache of the memory '
                "manager's own prompts",
            )
        )
    if problems:
        raise NotImplementedYetError(problems, source=source)
    return apply_defaults(config, raw)


def apply_defaults(config: LightMemConfig, raw: Mapping[str, Any]) -> LightMemConfig:
    """Fill backends the user left out with the embedded default, as the strategy needs them.

    A key given explicitly (even as ``None``) is kept as the user wrote it. With an explicit
    ``retrieval.retrievers`` chain no retriever is added, only a text embedder if a vector store
    in the chain needs one.
    """
    changes: dict[str, Any] = {}
    if config.retrieval.retrievers is not None:
        if config.retrieve_strategy is None:
            changes["retrieve_strategy"] = "hybrid"
        wants_vectors = any(r.kind == "embedding_retriever" for r in config.retrieval.retrievers)
        if wants_vectors and "text_embedder" not in raw and config.text_embedder is None:
            changes["text_embedder"] = DEFAULT_BACKENDS["text_embedder"]
    else:
        strategy = config.retrieve_strategy or "hybrid"
        if config.retrieve_strategy is None:
            changes["retrieve_strategy"] = strategy
        needs_vectors = strategy in ("embedding", "hybrid") or config.index_strategy in (
            "embedding",
            "hybrid",
        )
        needs_text = strategy in ("context", "hybrid") or config.index_strategy in (
            "context",
            "hybrid",
        )
        if needs_vectors:
            for key in ("text_embedder", "embedding_retriever"):
                if key not in raw and getattr(config, key) is None:
                    changes[key] = DEFAULT_BACKENDS[key]
        if needs_text and "context_retriever" not in raw and config.context_retriever is None:
            changes["context_retriever"] = DEFAULT_BACKENDS["context_retriever"]
    if config.topic_segment and config.topic_segmenter is None and "topic_segmenter" not in raw:
        changes["topic_segmenter"] = BackendSpec("embedding")
    if config.memory_manager is None and not _rerankers_given(raw):
        # No LLM supersedes outdated facts: of memories competing for the same answer the
        # newer comes first (lightmem_core/recency.py); `reranker: []` turns it off.
        changes["reranker"] = [BackendSpec(DEFAULT_RERANKER)]
    retrieval = config.retrieval
    if retrieval.named_speaker is None or retrieval.segments is None or retrieval.exchange is None:
        # Measured on memories of messages (no LLM); extracted facts keep them off unless set.
        without_llm = config.memory_manager is None
        if retrieval.named_speaker is None:
            retrieval = attrs.evolve(retrieval, named_speaker=NAMED_SPEAKER if without_llm else 0.0)
        if retrieval.segments is None:
            retrieval = attrs.evolve(
                retrieval, segments=SegmentSpec() if without_llm else SegmentSpec(weight=0.0)
            )
        if retrieval.exchange is None:
            retrieval = attrs.evolve(
                retrieval, exchange=ExchangeSpec() if without_llm else ExchangeSpec(share=0.0)
            )
        changes["retrieval"] = retrieval
    return attrs.evolve(config, **changes) if changes else config


def _rerankers_given(raw: Mapping[str, Any]) -> bool:
    retrieval = raw.get("retrieval")
    return "reranker" in raw or (isinstance(retrieval, Mapping) and "rerankers" in retrieval)


def _without_absent_default(
    config: LightMemConfig, raw: Mapping[str, Any], host: Any
) -> LightMemConfig:
    """The default reranker applies where the host has the core's built-ins (a host built by
    hand from chosen plugins only may lack them): left out otherwise."""
    default = [BackendSpec(DEFAULT_RERANKER)]
    if config.reranker != default or _rerankers_given(raw):
        return config
    if host.registry.get("reranker", DEFAULT_RERANKER) is not None:
        return config
    return attrs.evolve(config, reranker=None)


def check_consistency(config: LightMemConfig) -> None:
    """Refuse combinations that cannot run, naming the keys involved."""
    problems: list[ConfigProblem | str] = []

    def refuse(path: str, message: str, suggestion: str | None = None) -> None:
        problems.append(ConfigProblem(path, message, suggestion))

    if config.kv_cache and config.memory_manager is None:
        refuse(
            "$.kv_cache",
            "the KV cache is the memory manager's",
            "configure a memory_manager (e.g. llama-cpp or openai) or set kv_cache to false",
        )
    strategy = config.retrieve_strategy
    explicit = config.retrieval.retrievers
    if explicit is None:
        if strategy in ("embedding", "hybrid"):
            for key in ("text_embedder", "embedding_retriever"):
                if getattr(config, key) is None:
                    refuse(
                        f"$.{key}",
                        f"retrieve_strategy {strategy!r} needs a {key}",
                        "configure one or set retrieve_strategy to 'context'",
                    )
        if strategy in ("context", "hybrid") and config.context_retriever is None:
            refuse(
                "$.context_retriever",
                f"retrieve_strategy {strategy!r} needs a context_retriever",
                "configure one (e.g. {'model_name': 'BM25'}) or set retrieve_strategy to "
                "'embedding'",
            )
    else:
        for key in ("embedding_retriever", "context_retriever"):
            if getattr(config, key) is not None:
                refuse(
                    f"$.{key}",
                    "the retrieval chain is given in $.retrieval.retrievers",
                    f"name this backend there (with kind {key!r}) instead of in both places",
                )
        if not explicit:
            refuse("$.retrieval.retrievers", "the chain needs at least one retriever")
        labels: dict[str, int] = {}
        for i, spec in enumerate(explicit):
            path = f"$.retrieval.retrievers[{i}]"
            if spec.kind not in RETRIEVER_KINDS:
                refuse(
                    f"{path}.kind",
                    f"{spec.kind!r} cannot search",
                    f"choose one of {', '.join(RETRIEVER_KINDS)}",
                )
            if spec.name is not None:
                if spec.name in labels:
                    refuse(
                        f"{path}.name",
                        f"{spec.name!r} is already the name of "
                        f"$.retrieval.retrievers[{labels[spec.name]}]",
                        "names label each hit's scores and must differ",
                    )
                labels[spec.name] = i
        needs_embedder = any(r.kind == "embedding_retriever" for r in explicit)
        if needs_embedder and config.text_embedder is None:
            refuse(
                "$.text_embedder",
                "an embedding_retriever in $.retrieval.retrievers needs a text_embedder",
            )
        if strategy in ("embedding", "context"):
            wanted = "embedding_retriever" if strategy == "embedding" else "context_retriever"
            if not any(r.kind == wanted for r in explicit):
                refuse(
                    "$.retrieve_strategy",
                    f"{strategy!r} searches the chain's {wanted} elements and "
                    "$.retrieval.retrievers has none",
                )
    if config.reranker is not None and config.retrieval.rerankers is not None:
        refuse(
            "$.reranker",
            "the rerankers are given in $.retrieval.rerankers",
            "name them in one place",
        )
    if config.pre_compress and config.pre_compressor is None:
        refuse("$.pre_compressor", "pre_compress is true but no pre_compressor is set")
    if config.topic_segment and config.topic_segmenter is None:
        refuse("$.topic_segmenter", "topic_segment is true but no topic_segmenter is set")
    if (
        config.graph_mem
        and config.graph_memory is None
        and not any(r.kind == "graph_memory" for r in explicit or ())
    ):
        refuse(
            "$.graph_mem",
            "graph memory needs a graph_memory backend",
            "install a graph plugin and name it under $.graph_memory (e.g. "
            "{'model_name': 'networkx'}), or set graph_mem to false",
        )
    if config.prompts != PromptOverrides():
        from .llm.prompts import prefix_problems, template_problems

        for name, text in attrs.asdict(config.prompts).items():
            if text is not None:
                found = template_problems(name, text)
                if not found and config.kv_cache:
                    found = prefix_problems(name, text)
                problems += found
    if config.update == "online" and config.memory_manager is None:
        refuse("$.update", "'online' update needs a memory_manager (an LLM)")
    if problems:
        raise ConfigError(problems)


# ---------------------------------------------------------------------------------------------
# Backend options: resolved through the registry, then structured into the backend's class.
# ---------------------------------------------------------------------------------------------


@attrs.frozen
class ChainElement:
    """One resolved retriever of the retrieval chain."""

    label: str
    kind: str
    path: str
    spec: BackendSpec
    weight: float


#: The labels the shorthand (original keys) gives each retriever kind.
_DEFAULT_LABELS = {
    "embedding_retriever": "embedding",
    "context_retriever": "context",
    "graph_memory": "graph",
}


def retrieval_chain(config: LightMemConfig) -> list[ChainElement]:
    """The retrievers a configuration selects, in order (see :class:`RetrievalConfig`)."""
    if config.retrieval.retrievers is None:
        weights = config.hybrid_weights
        out = []
        if config.embedding_retriever is not None:
            out.append(
                ChainElement(
                    "embedding",
                    "embedding_retriever",
                    "$.embedding_retriever",
                    config.embedding_retriever,
                    weights.embedding,
                )
            )
        if config.context_retriever is not None:
            out.append(
                ChainElement(
                    "context",
                    "context_retriever",
                    "$.context_retriever",
                    config.context_retriever,
                    weights.context,
                )
            )
        if config.graph_mem and config.graph_memory is not None:
            out.append(
                ChainElement(
                    "graph", "graph_memory", "$.graph_memory", config.graph_memory, weights.graph
                )
            )
        if config.multimodal_embedder is not None:
            out.append(
                ChainElement(
                    "multimodal",
                    "context_retriever",
                    "$.multimodal_embedder:retriever",
                    BackendSpec("multimodal"),
                    weights.multimodal,
                )
            )
        return out
    out = []
    # A name given is the element's label as given; an unnamed element takes a label no other
    # element has, given or taken (duplicate given names are refused by check_consistency).
    used: set[str] = {s.name for s in config.retrieval.retrievers if s.name is not None}
    for i, spec in enumerate(config.retrieval.retrievers):
        label = spec.name
        if label is None:
            label = _DEFAULT_LABELS.get(spec.kind, spec.model_name)
            if label in used:
                label = spec.model_name
            base, n = label, 2
            while label in used:
                label, n = f"{base}-{n}", n + 1
        used.add(label)
        out.append(
            ChainElement(
                label, spec.kind, f"$.retrieval.retrievers[{i}]", spec.backend, spec.weight
            )
        )
    return out


#: Configuration keys that select one backend, with their kind (the retrievers, rerankers and
#: pre-compressors are chains, resolved by :func:`selected_backends`).
SINGLE_BACKEND_KEYS: dict[str, str] = {
    k: k for k in BACKEND_KINDS if k not in ("pre_compressor", "reranker", *RETRIEVER_KINDS)
}


def selected_backends(config: LightMemConfig) -> list[tuple[str, str, BackendSpec]]:
    """``(config path, kind, spec)`` for every backend the configuration selects, in order.

    A ``graph_memory`` block is listed (and so validated) even when ``graph_mem`` is off; the
    pipeline builds only what :func:`retrieval_chain` puts in the chain.
    """
    out: list[tuple[str, str, BackendSpec]] = []
    specs = config.pre_compressors()
    if isinstance(config.pre_compressor, list):
        out += [(f"$.pre_compressor[{i}]", "pre_compressor", s) for i, s in enumerate(specs)]
    elif specs:
        out.append(("$.pre_compressor", "pre_compressor", specs[0]))
    for key, kind in SINGLE_BACKEND_KEYS.items():
        if key == "topic_segmenter" and not config.topic_segment:
            continue
        spec = getattr(config, key)
        if spec is not None:
            out.append((f"$.{key}", kind, spec))
    chain = retrieval_chain(config)
    out += [(e.path, e.kind, e.spec) for e in chain]
    if config.graph_memory is not None and not any(e.path == "$.graph_memory" for e in chain):
        out.append(("$.graph_memory", "graph_memory", config.graph_memory))
    out += [(path, "reranker", spec) for path, spec in config.rerankers()]
    return out


def resolve_backend(host: Any, path: str, kind: str, spec: BackendSpec) -> tuple[Any, Any]:
    """Find ``spec``'s registration and structure its options. Returns (registration, options)."""
    from .plugins import KNOWN_PROVIDERS, install_command, normalize_name

    registry = host.registry
    try:
        registration = registry.get(kind, spec.model_name)
    except DuplicateBackendError as exc:
        raise ConfigError(ConfigProblem(f"{path}.model_name", str(exc))) from None
    if registration is None:
        installed = registry.names(kind)
        # the problem, then lines that say where the backend may be found
        lines: list[ConfigProblem | str] = [
            ConfigProblem(
                f"{path}.model_name",
                f"no {kind} backend named {spec.model_name!r} is installed. "
                f"Installed {kind} backends: {', '.join(installed) if installed else 'none'}.",
            )
        ]
        provider = KNOWN_PROVIDERS.get((kind, normalize_name(spec.model_name)))
        if provider:
            lines.append(
                f"  It is provided by the plugin {provider}, not on PyPI yet; from a LightMem "
                f"checkout: {install_command(provider)}"
            )
        left_out = getattr(host, "left_out", [])
        if left_out:
            lines.append(
                f"  The plugin selection (LIGHTMEM_PLUGINS) leaves out installed plugins, which "
                f"may provide it: {', '.join(left_out)}"
            )
        failed = host.failed_plugins()
        if failed:
            lines.append("  Plugins that failed to load:")
            lines += [f"    {p.name} ({p.distribution or 'unknown'}): {p.error}" for p in failed]
        raise BackendNotFoundError(lines)
    options_cls = registration.options
    configs = spec.configs or {}
    if options_cls is None:
        if configs:
            raise ConfigError(
                ConfigProblem(
                    f"{path}.configs",
                    f"backend {spec.model_name!r} takes no options, got {mask_secrets(configs)}",
                    "remove configs",
                )
            )
        return registration, None
    return registration, structure(configs, options_cls, path=f"{path}.configs")


@attrs.frozen
class ResolvedBackend:
    """One backend a configuration selects: where (``path``, for messages), its kind, its
    spec, the registration found for it and its options structured into the backend's class."""

    path: str
    kind: str
    spec: BackendSpec
    registration: Any = attrs.field(repr=False)
    options: Any = attrs.field(repr=False)

    @property
    def name(self) -> str:
        """The registered name of the backend (``spec.model_name`` as the registry spells it)."""
        return str(self.registration.name)

    @property
    def plugin(self) -> str:
        return str(self.registration.plugin)


@attrs.frozen
class ResolvedRetriever:
    """One element of the retrieval chain with its resolved backend."""

    label: str
    weight: float
    backend: ResolvedBackend

    @property
    def kind(self) -> str:
        return self.backend.kind

    @property
    def path(self) -> str:
        return self.backend.path


@attrs.frozen
class ResolvedConfig:
    """A configuration resolved once (:func:`resolve`): the structured configuration with its
    defaults, and every backend it selects found in the registry with its options structured.

    The memory's backends, ``lightmem config check``, the CLI and the evaluation baselines all
    build from this one object; nothing resolves the configuration again.
    """

    config: LightMemConfig
    #: Every selected backend, in configuration order (validated; see :func:`selected_backends`).
    backends: tuple[ResolvedBackend, ...]
    #: The retrieval chain, in order.
    retrievers: tuple[ResolvedRetriever, ...]
    #: The plugin host the backends were found in.
    host: Any = attrs.field(eq=False, repr=False)

    @property
    def record_store(self) -> ResolvedBackend | None:
        """The configured record store (``None``: the built-in SQLite store)."""
        found = self.of_kind("record_store")
        return found[0] if found else None

    def of_kind(self, kind: str) -> list[ResolvedBackend]:
        """The selected backends of ``kind`` that a memory builds, in order: for a retriever
        kind, the chain's elements only (a ``graph_memory`` block with ``graph_mem`` off is
        validated, not built)."""
        if kind in RETRIEVER_KINDS:
            return [r.backend for r in self.retrievers if r.kind == kind]
        return [b for b in self.backends if b.kind == kind]

    def for_key(self, key: str) -> ResolvedBackend | None:
        """The backend the top-level configuration key ``key`` selects (``text_embedder``,
        ``context_retriever``, ...), or ``None``."""
        for backend in self.backends:
            if backend.path == f"$.{key}":
                return backend
        return None

    def chains(self, hooks: Sequence[str] = ()) -> dict[str, Any]:
        """The resolved chains (printed by ``lightmem config check``, in ``stats()``)."""
        fusion = self.config.fusion()
        return {
            "pre_compressors": [b.name for b in self.of_kind("pre_compressor")],
            "retrievers": [
                {
                    "name": r.label,
                    "kind": r.kind,
                    "backend": r.backend.name,
                    "weight": r.weight,
                    "path": r.path,
                }
                for r in self.retrievers
            ],
            "fusion": {"method": fusion.method, "k": fusion.k},
            "rerankers": [b.name for b in self.of_kind("reranker")],
            "hooks": list(hooks),
        }


def _named_backends(data: Any) -> list[tuple[str, str, BackendSpec]]:
    """The backends a configuration mapping that did not parse names at its top-level keys."""
    if not isinstance(data, Mapping):
        return []
    out: list[tuple[str, str, BackendSpec]] = []
    keys = {**SINGLE_BACKEND_KEYS, **{k: k for k in RETRIEVER_KINDS}}
    for key, kind in [
        *keys.items(),
        ("reranker", "reranker"),
        ("pre_compressor", "pre_compressor"),
    ]:
        value = data.get(key)
        items = list(enumerate(value)) if isinstance(value, list) else [(None, value)]
        for index, item in items:
            if not isinstance(item, Mapping) or not isinstance(item.get("model_name"), str):
                continue
            configs = item.get("configs")
            path = f"$.{key}" if index is None else f"$.{key}[{index}]"
            spec = BackendSpec(item["model_name"], configs if isinstance(configs, dict) else None)
            out.append((path, kind, spec))
    return out


def resolve(
    data: Mapping[str, Any] | LightMemConfig | None, host: Any, *, source: str | None = None
) -> ResolvedConfig:
    """The one resolution step: structure, consistency, and every selected backend found in
    the registry with its options structured. Every problem is reported in one
    :class:`ConfigError` (:class:`BackendNotFoundError` when a backend is not installed)."""
    problems: list[ConfigProblem] = []
    missing = False
    try:
        config = parse_config(data, source=source)
    except ConfigError as exc:
        # Report every problem in one go: the backends the mapping names are looked up too.
        problems += exc.problems
        for path, kind, spec in _named_backends(data):
            try:
                resolve_backend(host, path, kind, spec)
            except ConfigError as found:
                missing = missing or isinstance(found, BackendNotFoundError)
                problems += found.problems
        raise (BackendNotFoundError if missing else type(exc))(problems, source=source) from None
    if isinstance(data, Mapping):
        config = _without_absent_default(config, data, host)
    try:
        check_consistency(config)
        selected = selected_backends(config)
    except ConfigError as exc:
        problems += exc.problems
        selected = _named_backends(data)
    backends: list[ResolvedBackend] = []
    for path, kind, spec in selected:
        try:
            registration, options = resolve_backend(host, path, kind, spec)
        except ConfigError as exc:
            missing = missing or isinstance(exc, BackendNotFoundError)
            problems += exc.problems
        else:
            backends.append(ResolvedBackend(path, kind, spec, registration, options))
    if problems:
        raise (BackendNotFoundError if missing else ConfigError)(problems, source=source)
    by_path = {b.path: b for b in backends}
    chain = tuple(
        ResolvedRetriever(e.label, e.weight, by_path[e.path]) for e in retrieval_chain(config)
    )
    return ResolvedConfig(config, tuple(backends), chain, host)


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------


def load_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a JSON, TOML or YAML configuration file into a mapping."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError([f"configuration file {str(p)!r} does not exist"])
    text = p.read_text(encoding="utf-8")
    suffix = p.suffix.lower()
    try:
        if suffix == ".json":
            data = json.loads(text)
        elif suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            raise ConfigError(
                [f"{p}: unknown configuration format {suffix!r}; use .json, .toml, .yaml or .yml"]
            )
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError([f"{p}: cannot parse: {exc}"]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([f"{p}: the top level must be a mapping, got {type(data).__name__}"])
    return data
