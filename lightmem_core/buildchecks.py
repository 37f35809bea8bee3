"""Checks a configuration can only pass once its backends exist, run when the memory is built."""

from __future__ import annotations

from typing import Any

from .errors import ConfigError, ConfigProblem


def check_embedding_dims(config: Any, backends: Any) -> None:
    """``embedding_retriever.configs.embedding_model_dims``, when given, must equal the text
    embedder's dimension: refused here rather than at the first add."""
    spec = config.embedding_retriever
    wanted = (spec.configs or {}).get("embedding_model_dims") if spec is not None else None
    if wanted is None or config.text_embedder is None:
        return
    embedder = backends.get("text_embedder")
    if embedder is None:
        return
    try:
        actual = int(embedder.dimension)
    except Exception as exc:
        raise ConfigError(
            ConfigProblem(
                "$.text_embedder",
                f"cannot read the embedder's dimension to check it: {exc}",
                "check the text_embedder's configs, or choose another text_embedder",
            )
        ) from exc
    if actual != wanted:
        raise ConfigError(
            ConfigProblem(
                "$.embedding_retriever.configs.embedding_model_dims",
                f"{wanted}, but the text_embedder {config.text_embedder.model_name!r} makes "
                f"{actual}-dimensional vectors",
                f"set embedding_model_dims to {actual} or remove it",
            )
        )
