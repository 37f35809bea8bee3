"""Options of the ``openai`` and ``deepseek`` memory managers, and each provider's defaults."""

from __future__ import annotations

from typing import Any

import attrs
from lightmem_hookspecs.options import OptionError, choice, in_range, non_negative, positive

#: ``structured_output`` values: how a ``json_schema`` request is passed to the endpoint.
STRUCTURED_OUTPUT_MODES = ("auto", "json_schema", "json_object", "none")

#: Options the original LightMem accepts for local models only; accepted here and ignored
#: with a warning, so one configuration can be shared between backends.
LOCAL_MODEL_OPTIONS = (
    "do_sample",
    "host",
    "num_gpu",
    "main_gpu",
    "gpu_memory_utilization",
    "trust_remote_code",
)


def _mask_secret(value: str | None) -> str:
    return "None" if value is None else "'***'"


def _base_url(_inst: Any, attribute: attrs.Attribute, value: str | None) -> None:
    if value is not None and not value.startswith(("http://", "https://")):
        raise OptionError.at(
            attribute,
            f"must be an http:// or https:// URL, got {value!r}",
            "give the server's address with its scheme, e.g. 'http://localhost:8000/v1'",
        )


def _not_vision(_inst: Any, attribute: attrs.Attribute, value: bool) -> None:
    if value:
        raise OptionError.at(
            attribute,
            "image input is not supported yet (the memory_manager contract passes text "
            "messages only)",
            "remove the option or set it to false",
        )


@attrs.frozen
class OpenAIOptions:
    """Options of the ``openai`` and ``deepseek`` memory managers.

    Names follow the original LightMem ``memory_manager.configs``; the transport options
    (``timeout``, ``max_retries``, back-off, ``structured_output``, ``extra_body`` ...) are
    LightMem additions. ``api_key`` is masked in ``repr`` and marked ``secret`` in its metadata.
    """

    # -- generation (original names and defaults) -------------------------------------------
    model: str | None = None
    temperature: float | None = attrs.field(default=0.1, validator=in_range(0.0, 2.0))
    top_p: float | None = attrs.field(default=0.1, validator=in_range(0.0, 1.0, low_open=True))
    max_tokens: int | None = attrs.field(default=2000, validator=positive)
    top_k: int | None = attrs.field(default=None, validator=positive)
    seed: int | None = 42
    stop: list[str] = attrs.field(factory=list)
    # -- endpoint and credentials ------------------------------------------------------------
    api_key: str | None = attrs.field(default=None, repr=_mask_secret, metadata={"secret": True})
    api_key_env: str | None = None
    openai_base_url: str | None = attrs.field(default=None, validator=_base_url)
    deepseek_base_url: str | None = attrs.field(default=None, validator=_base_url)
    vllm_base_url: str | None = attrs.field(default=None, validator=_base_url)
    site_url: str | None = None
    app_name: str | None = None
    extra_headers: dict[str, str] = attrs.field(factory=dict)
    extra_body: dict[str, Any] = attrs.field(factory=dict)
    # -- transport ---------------------------------------------------------------------------
    timeout: float = attrs.field(default=60.0, validator=positive)
    max_retries: int = attrs.field(default=3, validator=non_negative)
    retry_backoff: float = attrs.field(default=0.5, validator=non_negative)
    retry_backoff_max: float = attrs.field(default=8.0, validator=non_negative)
    retry_after_max: float = attrs.field(default=60.0, validator=non_negative)
    structured_output: str = attrs.field(default="auto", validator=choice(*STRUCTURED_OUTPUT_MODES))
    token_limit_param: str = attrs.field(
        default="max_tokens", validator=choice("max_tokens", "max_completion_tokens")
    )
    # -- accepted for compatibility with the original configuration --------------------------
    enable_vision: bool = attrs.field(default=False, validator=_not_vision)
    vision_details: str | None = attrs.field(
        default="auto", validator=choice("auto", "low", "high", None)
    )
    do_sample: bool | None = None
    host: str | None = None
    num_gpu: int | None = None
    main_gpu: int | None = None
    gpu_memory_utilization: float | None = None
    trust_remote_code: bool | None = None


@attrs.frozen
class ProviderDefaults:
    """What differs between the ``openai`` and ``deepseek`` backends."""

    backend: str
    model: str
    base_url: str
    key_env: str
    base_url_option: str
    base_url_env: tuple[str, ...] = ()
    structured_output: str = "json_schema"


OPENAI = ProviderDefaults(
    backend="openai",
    model="gpt-4o-mini",
    base_url="https://api.openai.com/v1",
    key_env="OPENAI_API_KEY",
    base_url_option="openai_base_url",
    base_url_env=("OPENAI_BASE_URL", "OPENAI_API_BASE"),
)

DEEPSEEK = ProviderDefaults(
    backend="deepseek",
    model="deepseek-chat",
    base_url="https://api.deepseek.com/v1",
    key_env="DEEPSEEK_API_KEY",
    base_url_option="deepseek_base_url",
    base_url_env=("DEEPSEEK_BASE_URL",),
    # DeepSeek documents JSON mode (json_object) but no json_schema: skip the failing try.
    structured_output="json_object",
)
