"""Options of the ``qdrant`` embedding retriever and their checks (attrs and stdlib only)."""

from __future__ import annotations

import re
from typing import Any

import attrs
from lightmem_hookspecs.options import (
    OptionError,
    at_least,
    choice,
    non_negative,
    not_blank,
    positive,
    tcp_port,
)

#: ``path`` value that keeps the collection in memory (as in qdrant-client).
MEMORY = ":memory:"
ENGINES = ("auto", "edge", "client")
QUANTIZATIONS = ("int8", "none")


_COLLECTION_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}")


def _collection_name(inst: Any, attribute: attrs.Attribute, value: str) -> None:
    not_blank(inst, attribute, value)
    if not _COLLECTION_NAME.fullmatch(value):
        raise OptionError.at(
            attribute,
            f"not a collection name: {value!r}",
            "use letters, digits, '_', '-' and '.' (not first), at most 255 characters",
        )


@attrs.frozen
class QdrantOptions:
    """Options of the ``qdrant`` embedding retriever (``embedding_retriever.configs``).

    The first nine names are the original LightMem ``QdrantConfig`` keys (its ``client`` key,
    a live Python object, cannot come from a configuration and is refused). The rest are
    additions. The plugin's README describes every option; the three modes are:

    * local path (default): ``path`` (default ``<memory_dir>/qdrant``);
    * in memory: ``path: ":memory:"`` or ``on_disk: false``;
    * a Qdrant server: ``url`` or ``host`` (+ ``port``), with ``api_key`` if it needs one.
    """

    collection_name: str = attrs.field(default="lightmem", validator=_collection_name)
    embedding_model_dims: int | None = attrs.field(default=None, validator=positive)
    host: str | None = attrs.field(default=None, validator=not_blank)
    port: int | None = attrs.field(default=None, validator=tcp_port)
    path: str | None = attrs.field(default=None, validator=not_blank)
    url: str | None = attrs.field(default=None, validator=not_blank)
    api_key: str | None = attrs.field(default=None, repr=False)
    on_disk: bool | None = None
    engine: str = attrs.field(default="auto", validator=choice(*ENGINES))
    batch_size: int = attrs.field(default=256, validator=positive)
    quantization: str = attrs.field(default="int8", validator=choice(*QUANTIZATIONS))
    oversampling: float = attrs.field(default=2.0, validator=at_least(1.0))
    optimize_threshold: int = attrs.field(default=10_000, validator=positive)
    max_segment_points: int = attrs.field(default=100_000, validator=positive)
    hnsw_m: int = attrs.field(default=0, validator=non_negative)
    hnsw_ef_construct: int = attrs.field(default=100, validator=positive)
    hnsw_ef: int | None = attrs.field(default=None, validator=positive)
    prefer_grpc: bool = False
    grpc_port: int = attrs.field(default=6334, validator=tcp_port)
    https: bool | None = None
    timeout: int | None = attrs.field(default=None, validator=positive)
    store_text: bool = True

    def __attrs_post_init__(self) -> None:
        problems = option_problems(self)
        if problems:
            raise problems[0]

    @property
    def server(self) -> bool:
        return self.url is not None or self.host is not None

    @property
    def in_memory(self) -> bool:
        return not self.server and (self.path == MEMORY or self.on_disk is False)

    def resolved_engine(self) -> str:
        """``edge`` or ``client``: what ``engine: auto`` means for this mode."""
        if self.engine != "auto":
            return self.engine
        return "client" if self.server or self.in_memory else "edge"

    def mode(self) -> str:
        """``server``, ``memory`` or ``path``."""
        if self.server:
            return "server"
        return "memory" if self.in_memory else "path"


def option_problems(options: QdrantOptions) -> list[OptionError]:
    """Combinations of options that cannot work, each naming the option to change."""
    problems = []

    def refuse(option: str, message: str, suggestion: str | None = None) -> None:
        problems.append(OptionError(message, suggestion=suggestion, option=option))

    if options.url is not None and options.host is not None:
        refuse("url", "give either url or host (+ port), not both")
    if options.server and options.path is not None:
        refuse(
            "path",
            "a Qdrant server (url/host) keeps its own storage",
            "remove path, or remove url/host to use a local store",
        )
    if options.port is not None and options.host is None:
        refuse("port", "needs host", "give host too, or the port inside url")
    if options.api_key is not None and not options.server:
        refuse("api_key", "only a Qdrant server uses an API key", "set url or host too")
    if options.server and options.engine == "edge":
        refuse(
            "engine",
            "'edge' is the embedded engine and cannot talk to a server",
            "use 'client' or 'auto' with url/host",
        )
    if options.path == MEMORY and options.on_disk is True:
        refuse("on_disk", "true contradicts path ':memory:'", "drop one of them")
    if options.url is not None and "://" not in options.url:
        refuse(
            "url",
            f"expected a full URL, got {options.url!r}",
            "write it with its scheme, e.g. http://localhost:6333",
        )
    return problems
