"""Registers the ``huggingface`` text embedder. Imports only the contract, attrs and the stdlib."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs
from lightmem_hookspecs import BackendContext, Register, hookimpl

if TYPE_CHECKING:
    from .embedder import HuggingFaceEmbedder


def _positive_or_none(_inst: Any, attribute: attrs.Attribute, value: int | None) -> None:
    if value is not None and value < 1:
        raise ValueError(f"{attribute.name}: must be >= 1, got {value}")


def _no_remote_endpoint(_inst: Any, attribute: attrs.Attribute, value: str | None) -> None:
    if value is not None:
        raise ValueError(
            f"{attribute.name}: embedding through a remote text-embeddings-inference server is "
            "not supported by lightmem-huggingface; remove it to run the model locally"
        )


@attrs.frozen
class HuggingFaceOptions:
    """Options of the ``huggingface`` text embedder (``text_embedder.configs``).

    ``model``, ``embedding_dims``, ``model_kwargs`` and ``huggingface_base_url`` are the original
    LightMem names; ``device`` and ``batch_size`` are additions. See the plugin's README.
    """

    model: str | None = None
    embedding_dims: int | None = attrs.field(default=None, validator=_positive_or_none)
    model_kwargs: dict[str, Any] | None = None
    device: str | None = None
    batch_size: int = attrs.field(default=32, validator=_positive_or_none)
    huggingface_base_url: str | None = attrs.field(default=None, validator=_no_remote_endpoint)


def build_embedder(options: HuggingFaceOptions, context: BackendContext) -> HuggingFaceEmbedder:
    """The factory: finds the model folder; torch and the weights load on the first embed."""
    from .embedder import HuggingFaceEmbedder

    return HuggingFaceEmbedder(
        options.model,
        embedding_dims=options.embedding_dims,
        model_kwargs=options.model_kwargs,
        device=options.device,
        batch_size=options.batch_size,
    )


@hookimpl
def lightmem_register_text_embedders(register: Register) -> None:
    register(
        "huggingface",
        build_embedder,
        options=HuggingFaceOptions,
        description="sentence-transformers models, offline; default all-MiniLM-L6-v2 (384 dims).",
    )
