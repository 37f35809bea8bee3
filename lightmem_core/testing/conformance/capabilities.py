"""Checks of the optional capabilities several kinds share, mixed into their suites, and
``require``, with which every suite skips a test of a capability the backend does not offer.

``CloseableChecks`` (pre-compressor, topic segmenter, memory manager, text embedder,
reranker): a backend offering :class:`~lightmem_hookspecs.Closeable` has a ``close`` the core
can call with no argument. The suites' ``backend`` may be a module-scoped instance that later
tests use, so the check reads the signature and does not close it.

``EveryStrategyChecks`` (embedding and context retrievers) and the reranker suite's
``top_only`` check: a declared flag is a ``bool``.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from lightmem_hookspecs import Closeable, EveryStrategy


def require(backend: Any, capability: type, missing: str) -> None:
    """Skip the calling test unless ``backend`` implements the optional ``capability`` (a
    runtime-checkable Protocol); ``missing`` says what it lacks, e.g. "the index does not offer
    reset". A function, so that ``backend`` is not narrowed to the Protocol in the test."""
    if not isinstance(backend, capability):
        pytest.skip(f"{missing} ({capability.__name__} is optional)")


def _required(function: Any) -> list[str]:
    return [
        name
        for name, p in inspect.signature(function).parameters.items()
        if p.default is inspect.Parameter.empty
        and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]


class CloseableChecks:
    def test_close_needs_no_argument(self, backend: Any) -> None:
        require(backend, Closeable, "the backend does not offer close")
        assert callable(backend.close), "close must be a method"
        required = _required(backend.close)
        assert not required, f"the core calls close() with no argument; it requires {required}"


class EveryStrategyChecks:
    def test_every_strategy_is_declared_as_a_bool(self, backend: Any) -> None:
        require(backend, EveryStrategy, "the retriever does not declare every_strategy")
        assert isinstance(backend.every_strategy, bool), (
            f"every_strategy must be True or False, not {backend.every_strategy!r}"
        )
