"""Checks of the optional capabilities several kinds share, mixed into their suites.

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


def _required(function: Any) -> list[str]:
    return [
        name
        for name, p in inspect.signature(function).parameters.items()
        if p.default is inspect.Parameter.empty
        and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]


class CloseableChecks:
    def test_close_needs_no_argument(self, backend: Any) -> None:
        offers = isinstance(backend, Closeable)  # a flag: ``backend`` stays Any
        if not offers:
            pytest.skip("the backend does not offer close (Closeable is optional)")
        assert callable(backend.close), "close must be a method"
        required = _required(backend.close)
        assert not required, f"the core calls close() with no argument; it requires {required}"


class EveryStrategyChecks:
    def test_every_strategy_is_declared_as_a_bool(self, backend: Any) -> None:
        declares = isinstance(backend, EveryStrategy)  # a flag: ``backend`` stays Any
        if not declares:
            pytest.skip("the retriever does not declare every_strategy (EveryStrategy)")
        assert isinstance(backend.every_strategy, bool), (
            f"every_strategy must be True or False, not {backend.every_strategy!r}"
        )
