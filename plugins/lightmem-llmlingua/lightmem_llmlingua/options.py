"""Options of the ``llmlingua-2`` pre-compressor and topic segmenter; no heavy import."""

from __future__ import annotations

from typing import Any, Literal

import attrs
from lightmem_hookspecs.options import (
    OptionError,
    at_least,
    in_range,
    non_negative,
    unit_interval,
)
from lightmem_textkit.models import check_device

DEFAULT_MODEL = "microsoft/llmlingua-2-bert-base-multilingual-cased-meetingbank"

TorchDtype = Literal["auto", "float32", "float16", "bfloat16"]


def _llmlingua2_only(_inst: Any, attribute: attrs.Attribute, value: bool) -> None:
    if not value:
        raise OptionError.at(
            attribute,
            "LLMLingua-1 (perplexity of a causal LM) is not provided by lightmem-llmlingua",
            "keep use_llmlingua2: true, or use pre_compressor `entropy_compress` "
            "(lightmem-entropy) for a causal-LM compressor",
        )


#: Tokens of one model window: at least 8.
_WINDOW = at_least(8)


@attrs.frozen
class LLMLinguaConfig:
    """Which model to load and where (``llmlingua_config`` in the original LightMem)."""

    model_name: str = DEFAULT_MODEL
    device_map: str = attrs.field(default="cpu", validator=check_device)
    use_llmlingua2: bool = attrs.field(default=True, validator=_llmlingua2_only)
    torch_dtype: TorchDtype | None = None


@attrs.frozen
class LLMLingua2Config:
    """Batching and forced-token limits (``llmlingua2_config`` in the original LightMem)."""

    max_batch_size: int = attrs.field(default=50, validator=at_least(1))
    max_force_token: int = attrs.field(default=100, validator=at_least(1))


@attrs.frozen
class CompressConfig:
    """How much to keep (``compress_config`` in the original LightMem).

    ``rate`` is the share of each message's tokens that is kept; ``target_token`` (when > 0)
    caps each message at that many tokens instead. ``instruction`` is accepted for
    compatibility and ignored, as LLMLingua-2 ignores it.
    """

    instruction: str = ""
    #: The share of tokens kept.
    rate: float = attrs.field(default=0.8, validator=in_range(0.0, 1.0, low_open=True))
    target_token: int = -1
    force_tokens: list[str] = attrs.field(factory=list)
    force_reserve_digit: bool = False
    token_to_word: Literal["mean", "first"] = "mean"
    chunk_end_tokens: list[str] = attrs.field(factory=lambda: [".", "\n"])


@attrs.frozen
class LLMLingua2Options:
    """Options of the ``llmlingua-2`` pre-compressor (``pre_compressor.configs``).

    ``llmlingua_config``, ``llmlingua2_config`` and ``compress_config`` follow the original
    LightMem ``LlmLingua2Config``; ``engine`` and ``max_seq_len`` are additions.
    """

    llmlingua_config: LLMLinguaConfig = attrs.field(factory=LLMLinguaConfig)
    llmlingua2_config: LLMLingua2Config = attrs.field(factory=LLMLingua2Config)
    compress_config: CompressConfig = attrs.field(factory=CompressConfig)
    engine: Literal["batched", "llmlingua"] = "batched"
    max_seq_len: int = attrs.field(default=512, validator=_WINDOW)


@attrs.frozen
class SegmenterOptions:
    """Options of the ``llmlingua-2`` topic segmenter (``topic_segmenter.configs``).

    ``model_name``, ``device_map``, ``torch_dtype``, ``buffer_len`` and ``layers`` follow the
    original LightMem segmenter; the rest are additions. See the plugin's README.
    """

    model_name: str | None = None
    device_map: str = attrs.field(default="cpu", validator=check_device)
    torch_dtype: TorchDtype | None = None
    buffer_len: int = attrs.field(default=512, validator=_WINDOW)
    layers: list[int] | None = None
    max_batch_size: int = attrs.field(default=4, validator=at_least(1))
    combine: Literal["confirm", "score", "attention"] = "confirm"
    tolerance: int = attrs.field(default=3, validator=non_negative)
    attention_z: float = attrs.field(default=0.0, validator=non_negative)
    use_embeddings: bool = True
    window: int = attrs.field(default=2, validator=at_least(1))
    threshold: float | None = attrs.field(default=None, validator=in_range(-1.0, 1.0))
    z: float = attrs.field(default=1.0, validator=non_negative)
    attention_weight: float = attrs.field(default=0.5, validator=unit_interval)
    min_segment: int = attrs.field(default=2, validator=at_least(1))
