"""Options of the ``llmlingua-2`` pre-compressor and topic segmenter; no heavy import."""

from __future__ import annotations

from typing import Any, Literal

import attrs
from lightmem_textkit.models import check_device
from lightmem_textkit.options import at_least_one, non_negative, unit_interval

DEFAULT_MODEL = "microsoft/llmlingua-2-bert-base-multilingual-cased-meetingbank"

TorchDtype = Literal["auto", "float32", "float16", "bfloat16"]


def _share(_inst: Any, attribute: attrs.Attribute, value: float) -> None:
    if not 0.0 < value <= 1.0:
        raise ValueError(
            f"{attribute.name}: the share of tokens kept must be in (0, 1], got {value}"
        )


def _cosine(_inst: Any, attribute: attrs.Attribute, value: float | None) -> None:
    if value is not None and not -1.0 <= value <= 1.0:
        raise ValueError(f"{attribute.name}: must be between -1 and 1, got {value}")


def _llmlingua2_only(_inst: Any, attribute: attrs.Attribute, value: bool) -> None:
    if not value:
        raise ValueError(
            f"{attribute.name}: LLMLingua-1 (perplexity of a causal LM) is not provided by "
            "lightmem-llmlingua; keep use_llmlingua2: true, or use pre_compressor "
            "`entropy_compress` (lightmem-entropy) for a causal-LM compressor"
        )


def _window(_inst: Any, attribute: attrs.Attribute, value: int) -> None:
    if value < 8:
        raise ValueError(f"{attribute.name}: must be >= 8 tokens, got {value}")


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

    max_batch_size: int = attrs.field(default=50, validator=at_least_one)
    max_force_token: int = attrs.field(default=100, validator=at_least_one)


@attrs.frozen
class CompressConfig:
    """How much to keep (``compress_config`` in the original LightMem).

    ``rate`` is the share of each message's tokens that is kept; ``target_token`` (when > 0)
    caps each message at that many tokens instead. ``instruction`` is accepted for
    compatibility and ignored, as LLMLingua-2 ignores it.
    """

    instruction: str = ""
    rate: float = attrs.field(default=0.8, validator=_share)
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
    max_seq_len: int = attrs.field(default=512, validator=_window)


@attrs.frozen
class SegmenterOptions:
    """Options of the ``llmlingua-2`` topic segmenter (``topic_segmenter.configs``).

    ``model_name``, ``device_map``, ``torch_dtype``, ``buffer_len`` and ``layers`` follow the
    original LightMem segmenter; the rest are additions. See the plugin's README.
    """

    model_name: str | None = None
    device_map: str = attrs.field(default="cpu", validator=check_device)
    torch_dtype: TorchDtype | None = None
    buffer_len: int = attrs.field(default=512, validator=_window)
    layers: list[int] | None = None
    max_batch_size: int = attrs.field(default=4, validator=at_least_one)
    combine: Literal["confirm", "score", "attention"] = "confirm"
    tolerance: int = attrs.field(default=3, validator=non_negative)
    attention_z: float = attrs.field(default=0.0, validator=non_negative)
    use_embeddings: bool = True
    window: int = attrs.field(default=2, validator=at_least_one)
    threshold: float | None = attrs.field(default=None, validator=_cosine)
    z: float = attrs.field(default=1.0, validator=non_negative)
    attention_weight: float = attrs.field(default=0.5, validator=unit_interval)
    min_segment: int = attrs.field(default=2, validator=at_least_one)
