"""Options of the ``entropy_compress`` pre-compressor; no heavy import."""

from __future__ import annotations

from typing import Any, Literal

import attrs
from lightmem_textkit.models import check_device
from lightmem_textkit.options import at_least_one


def _share(_inst: Any, attribute: attrs.Attribute, value: float) -> None:
    if not 0.0 < value <= 1.0:
        raise ValueError(
            f"{attribute.name}: the share of words kept must be in (0, 1], got {value}"
        )


def _window(_inst: Any, attribute: attrs.Attribute, value: int) -> None:
    if value < 8:
        raise ValueError(f"{attribute.name}: must be >= 8 tokens, got {value}")


def _not_empty(_inst: Any, attribute: attrs.Attribute, value: str) -> None:
    if not value.strip():
        raise ValueError(f"{attribute.name}: must name a model folder, got an empty string")


@attrs.frozen
class EntropyConfig:
    """The model and how much to keep (``entropy_config`` in the original LightMem).

    ``model_name``, ``device``, ``word_level_strategy``, ``compress_rate`` and ``max_length`` are
    the original names; ``batch_size`` and ``torch_dtype`` are additions.
    """

    model_name: str = attrs.field(default="gpt2", validator=_not_empty)
    device: str = attrs.field(default="cpu", validator=check_device)
    word_level_strategy: Literal["average", "first_token"] = "average"
    compress_rate: float = attrs.field(default=0.5, validator=_share)
    max_length: int = attrs.field(default=512, validator=_window)
    batch_size: int = attrs.field(default=8, validator=at_least_one)
    torch_dtype: Literal["auto", "float32", "float16", "bfloat16"] | None = None


@attrs.frozen
class EntropyOptions:
    """Options of the ``entropy_compress`` pre-compressor (``pre_compressor.configs``)."""

    entropy_config: EntropyConfig = attrs.field(factory=EntropyConfig)
