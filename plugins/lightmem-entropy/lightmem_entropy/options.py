"""Options of the ``entropy_compress`` pre-compressor; no heavy import."""

from __future__ import annotations

from typing import Literal

import attrs
from lightmem_hookspecs.options import at_least, in_range, not_blank
from lightmem_textkit.models import check_device


@attrs.frozen
class EntropyConfig:
    """The model and how much to keep (``entropy_config`` in the original LightMem).

    ``model_name``, ``device``, ``word_level_strategy``, ``compress_rate`` and ``max_length`` are
    the original names; ``batch_size`` and ``torch_dtype`` are additions.
    """

    model_name: str = attrs.field(default="gpt2", validator=not_blank)
    device: str = attrs.field(default="cpu", validator=check_device)
    word_level_strategy: Literal["average", "first_token"] = "average"
    #: The share of words kept.
    compress_rate: float = attrs.field(default=0.5, validator=in_range(0.0, 1.0, low_open=True))
    #: Tokens of one model window.
    max_length: int = attrs.field(default=512, validator=at_least(8))
    batch_size: int = attrs.field(default=8, validator=at_least(1))
    torch_dtype: Literal["auto", "float32", "float16", "bfloat16"] | None = None


@attrs.frozen
class EntropyOptions:
    """Options of the ``entropy_compress`` pre-compressor (``pre_compressor.configs``)."""

    entropy_config: EntropyConfig = attrs.field(factory=EntropyConfig)
