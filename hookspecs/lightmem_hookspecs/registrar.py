"""The backend registrar: what ``lightmem_register_backends`` hands a plugin.

One method per row of :data:`~lightmem_hookspecs.KINDS`, named after the kind (the key that
selects a backend of that kind in the configuration) and typed with the Protocol the kind's
backends implement, so a type checker tells a plugin author when a factory returns the wrong
thing; plus :meth:`BackendRegistrar.add`, which takes the kind by name and is what every
method calls. ``tests/test_registrar.py`` fails when the methods and the table disagree.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .context import BackendContext
    from .protocols import (
        ContextRetriever,
        EmbeddingRetriever,
        GraphMemory,
        MemoryManager,
        MultimodalEmbedder,
        PreCompressor,
        Reranker,
        TextEmbedder,
        TopicSegmenter,
    )
    from .records import RecordStore


class BackendRegistrar(abc.ABC):
    """Records the backends one plugin provides; the core passes one to
    ``lightmem_register_backends``.

    Every method records one backend: ``name`` is what a configuration selects it by
    (compared case-insensitively, ``_`` and ``-`` alike); ``factory(options, context)`` builds
    it when a configuration selects it, so heavy imports belong inside the factory, and
    receives an instance of ``options`` (an attrs class the configuration's ``configs`` are
    structured into; ``None``: the backend takes no options) and a
    :class:`~lightmem_hookspecs.BackendContext`. ``description`` is shown by ``lightmem
    plugins``. An invalid registration (an empty name, a factory that is not callable, options
    that are not an attrs class, an unknown kind) is refused with an error naming the plugin.
    """

    @abc.abstractmethod
    def add(
        self,
        kind: str,
        name: str,
        factory: Callable[[Any, BackendContext], Any],
        *,
        options: type | None = None,
        description: str = "",
    ) -> None:
        """Record a backend of ``kind`` (a name in ``BACKEND_KINDS``). The typed methods below
        call it; a plugin can call it directly for a kind its contract version lists."""

    def record_store(
        self,
        name: str,
        factory: Callable[[Any, BackendContext], RecordStore],
        *,
        options: type | None = None,
        description: str = "",
    ) -> None:
        """A record store (``record_store``): the system of record of a memory."""
        self.add("record_store", name, factory, options=options, description=description)

    def pre_compressor(
        self,
        name: str,
        factory: Callable[[Any, BackendContext], PreCompressor],
        *,
        options: type | None = None,
        description: str = "",
    ) -> None:
        """A pre-compressor (``pre_compressor``)."""
        self.add("pre_compressor", name, factory, options=options, description=description)

    def topic_segmenter(
        self,
        name: str,
        factory: Callable[[Any, BackendContext], TopicSegmenter],
        *,
        options: type | None = None,
        description: str = "",
    ) -> None:
        """A topic segmenter (``topic_segmenter``)."""
        self.add("topic_segmenter", name, factory, options=options, description=description)

    def memory_manager(
        self,
        name: str,
        factory: Callable[[Any, BackendContext], MemoryManager],
        *,
        options: type | None = None,
        description: str = "",
    ) -> None:
        """An LLM backend (``memory_manager``)."""
        self.add("memory_manager", name, factory, options=options, description=description)

    def text_embedder(
        self,
        name: str,
        factory: Callable[[Any, BackendContext], TextEmbedder],
        *,
        options: type | None = None,
        description: str = "",
    ) -> None:
        """A text embedder (``text_embedder``)."""
        self.add("text_embedder", name, factory, options=options, description=description)

    def multimodal_embedder(
        self,
        name: str,
        factory: Callable[[Any, BackendContext], MultimodalEmbedder],
        *,
        options: type | None = None,
        description: str = "",
    ) -> None:
        """A text-and-image embedder (``multimodal_embedder``)."""
        self.add("multimodal_embedder", name, factory, options=options, description=description)

    def embedding_retriever(
        self,
        name: str,
        factory: Callable[[Any, BackendContext], EmbeddingRetriever],
        *,
        options: type | None = None,
        description: str = "",
    ) -> None:
        """A vector store (``embedding_retriever``)."""
        self.add("embedding_retriever", name, factory, options=options, description=description)

    def context_retriever(
        self,
        name: str,
        factory: Callable[[Any, BackendContext], ContextRetriever],
        *,
        options: type | None = None,
        description: str = "",
    ) -> None:
        """A lexical index or other text retriever (``context_retriever``)."""
        self.add("context_retriever", name, factory, options=options, description=description)

    def graph_memory(
        self,
        name: str,
        factory: Callable[[Any, BackendContext], GraphMemory],
        *,
        options: type | None = None,
        description: str = "",
    ) -> None:
        """A graph memory (``graph_memory``)."""
        self.add("graph_memory", name, factory, options=options, description=description)

    def reranker(
        self,
        name: str,
        factory: Callable[[Any, BackendContext], Reranker],
        *,
        options: type | None = None,
        description: str = "",
    ) -> None:
        """A reranker (``reranker``)."""
        self.add("reranker", name, factory, options=options, description=description)
