"""Registers the ``huggingface`` text embedder. Imports only the contract, attrs and the stdlib."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs
from lightmem_hookspecs import BackendContext, BackendRegistrar, hookimpl
from lightmem_hookspecs.options import OptionError, at_least
from lightmem_textkit.models import check_model_folder, refuse_unusable_cuda

#: The plugin contract (lightmem-hookspecs) version this plugin is built for.
LIGHTMEM_CONTRACT = "1.7"

if TYPE_CHECKING:
    from .embedder import HuggingFaceEmbedder


def _no_remote_endpoint(_inst: Any, attribute: attrs.Attribute, value: str | None) -> None:
    if value is not None:
        raise OptionError.at(
            attribute,
            "embedding through a remote text-embeddings-inference server is not supported by "
            "lightmem-huggingface",
            "remove it to run the model locally",
        )


def _device_usable(_inst: Any, attribute: attrs.Attribute, value: str | None) -> None:
    refuse_unusable_cuda(attribute, value)


def _kwargs_device_usable(_inst: Any, attribute: attrs.Attribute, value: Any) -> None:
    device = value.get("device") if isinstance(value, dict) else None
    refuse_unusable_cuda(attribute, device, within=".device")


@attrs.frozen
class HuggingFaceOptions:
    """Options of the ``huggingface`` text embedder (``text_embedder.configs``).

    ``model``, ``embedding_dims``, ``model_kwargs`` and ``huggingface_base_url`` are the original
    LightMem names; ``device``, ``batch_size``, ``num_threads`` and ``small_batch_threads`` are
    additions. See the plugin's README.
    """

    model: str | None = attrs.field(default=None, validator=check_model_folder)
    embedding_dims: int | None = attrs.field(default=None, validator=at_least(1))
    model_kwargs: dict[str, Any] | None = attrs.field(default=None, validator=_kwargs_device_usable)
    device: str | None = attrs.field(default=None, validator=_device_usable)
    batch_size: int | None = attrs.field(default=None, validator=at_least(1))
    num_threads: int | None = attrs.field(default=None, validator=at_least(1))
    small_batch_threads: int | None = attrs.field(default=1, validator=at_least(1))
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
        num_threads=options.num_threads,
        small_batch_threads=options.small_batch_threads,
    )


@hookimpl
def lightmem_register_backends(registrar: BackendRegistrar) -> None:
    registrar.text_embedder(
        "huggingface",
        build_embedder,
        options=HuggingFaceOptions,
        description="sentence-transformers models, offline; default all-MiniLM-L6-v2 (384 dims).",
    )
    registrar.multimodal_embedder(
        "huggingface",
        build_clip,
        options=ClipOptions,
        description=(
            "A CLIP model through sentence-transformers: texts and images in one space "
            "(clip-ViT-B-32 by default; a local folder offline)"
        ),
    )


@attrs.frozen
class ClipOptions:
    """Options of the ``huggingface`` multimodal embedder (``multimodal_embedder.configs``):
    ``model`` (a local CLIP folder or a sentence-transformers name, default
    ``clip-ViT-B-32``), ``device``, ``batch_size``."""

    model: str | None = None
    device: str | None = attrs.field(default=None, validator=_device_usable)
    batch_size: int = attrs.field(default=32, validator=at_least(1))


def build_clip(options: ClipOptions, context: BackendContext) -> Any:
    """The factory: nothing loads until the first image or query is embedded."""
    from .clip import ClipEmbedder

    return ClipEmbedder(options.model, device=options.device, batch_size=options.batch_size)
