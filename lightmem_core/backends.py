"""Builds the configured backends through the registry and wraps them for usage accounting."""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from lightmem_hookspecs import PROTOCOLS, BackendContext, Completion, Operation, Usage

from .config import LightMemConfig, selected_backends
from .errors import BackendError, ConfigError, LightMemError
from .plugins import PluginHost

log = logging.getLogger("lightmem")

#: The name usage is booked under (``add_memory``, ``retrieve``, ``update`` ...).
current_operation: contextvars.ContextVar[str] = contextvars.ContextVar(
    "lightmem_operation", default="other"
)


class UsageBook:
    """Collects usage per operation and writes it to the record store."""

    def __init__(self, sink: Callable[[str, Usage], None]) -> None:
        self._sink = sink

    def book(self, usage: Usage) -> None:
        self._sink(current_operation.get(), usage)


class AccountedEmbedder:
    """A text embedder whose calls run as ``embed`` operations and are counted."""

    def __init__(self, backend: Any, name: str, host: PluginHost, book: UsageBook) -> None:
        self.backend, self.name, self.host, self.book = backend, name, host, book
        self.model_name = getattr(backend, "model_name", name)

    @property
    def dimension(self) -> int:
        return int(self.backend.dimension)

    def embed(self, texts: Sequence[str]) -> Any:
        import numpy as np

        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)

        def call(op: Operation) -> Any:
            vectors = np.asarray(self.backend.embed(texts), dtype=np.float32)
            op.usage.embedder_calls += 1
            op.usage.embedded_texts += len(texts)
            return vectors

        vectors, op = self.host.run_operation("embed", call, backend=self.name, texts=len(texts))
        self.book.book(op.usage)
        if vectors.shape != (len(texts), self.dimension):
            raise BackendError(
                f"text_embedder {self.name!r} returned an array of shape {vectors.shape} for "
                f"{len(texts)} texts; expected ({len(texts)}, {self.dimension})"
            )
        return vectors


class AccountedLLM:
    """A memory manager whose calls run as ``llm.complete`` operations and are counted."""

    def __init__(self, backend: Any, name: str, host: PluginHost, book: UsageBook) -> None:
        self.backend, self.name, self.host, self.book = backend, name, host, book
        self.model_name = getattr(backend, "model_name", name)

    def complete(
        self,
        messages: Sequence[Mapping[str, str]],
        *,
        json_schema: Mapping[str, Any] | None = None,
        max_tokens: int | None = None,
    ) -> Completion:
        def call(op: Operation) -> Completion:
            op.usage.llm_calls += 1
            try:
                result = self.backend.complete(
                    messages, json_schema=json_schema, max_tokens=max_tokens
                )
            except LightMemError:
                raise
            except Exception as exc:
                raise BackendError(
                    f"memory_manager {self.name!r} failed: {type(exc).__name__}: {exc}"
                ) from exc
            op.usage.prompt_tokens += result.prompt_tokens
            op.usage.completion_tokens += result.completion_tokens
            return result

        try:
            result, op = self.host.run_operation("llm.complete", call, backend=self.name)
        except Exception:
            self.book.book(Usage(llm_calls=1))
            raise
        self.book.book(op.usage)
        return result


class Backends:
    """The backends one configuration selects, built on demand through their factories."""

    def __init__(
        self,
        config: LightMemConfig,
        resolved: Mapping[str, tuple[Any, Any]],
        host: PluginHost,
        book: UsageBook,
    ) -> None:
        self.config, self.host, self.book = config, host, book
        self._resolved = dict(resolved)
        self._paths = {kind: [] for kind in PROTOCOLS}  # type: dict[str, list[str]]
        for path, kind, _spec in selected_backends(config):
            self._paths[kind].append(path)
        self._built: dict[str, Any] = {}
        self.context = BackendContext(
            memory_dir=config.memory_dir,
            precomp_topic_shared=config.precomp_topic_shared,
            get_backend=self.get,
            settings={"messages_use": config.messages_use},
        )

    def names(self, kind: str) -> list[str]:
        return [self._resolved[p][0].name for p in self._paths[kind]]

    def configured(self) -> dict[str, list[str]]:
        """The names of the configured backends, by kind (kinds with none left out)."""
        return {kind: self.names(kind) for kind in PROTOCOLS if self._paths[kind]}

    def get(self, kind: str) -> Any:
        """The (first) configured backend of ``kind``, or ``None``."""
        chain = self.chain(kind)
        return chain[0] if chain else None

    def chain(self, kind: str) -> list[Any]:
        """Every configured backend of ``kind``, in configuration order."""
        return [self._build(path, kind) for path in self._paths[kind]]

    def _build(self, path: str, kind: str) -> Any:
        if path in self._built:
            return self._built[path]
        registration, options = self._resolved[path]
        try:
            backend = registration.factory(options, self.context)
        except LightMemError:
            raise
        except Exception as exc:
            raise BackendError(
                f"{path}: building {kind} backend {registration.name!r} (plugin "
                f"{registration.plugin}) failed: {type(exc).__name__}: {exc}"
            ) from exc
        protocol = PROTOCOLS[kind]
        if not isinstance(backend, protocol):
            raise ConfigError(
                [
                    f"{path}: backend {registration.name!r} from plugin {registration.plugin} "
                    f"does not implement {protocol.__name__} (got {type(backend).__name__})"
                ]
            )
        if kind == "text_embedder":
            backend = AccountedEmbedder(backend, registration.name, self.host, self.book)
        elif kind == "memory_manager":
            backend = AccountedLLM(backend, registration.name, self.host, self.book)
        self._built[path] = backend
        return backend

    def close(self) -> None:
        for built in self._built.values():
            backend = getattr(built, "backend", built)  # the plugin's object, not the wrapper
            close = getattr(backend, "close", None)
            if callable(close):
                try:
                    close()
                except Exception as exc:
                    log.warning("closing %r failed: %s", backend, exc)
        self._built.clear()
