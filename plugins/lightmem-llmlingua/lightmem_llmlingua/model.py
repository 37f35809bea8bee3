"""Finding, checking and lazily loading the LLMLingua-2 encoder, shared under precomp_topic_shared.

The factories call :func:`get_handle` (stdlib only: it reads ``config.json``), so a missing folder
or the wrong kind of model is reported when the memory is built; torch, transformers and the
weights load on the first ``compress`` or ``segment`` call.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from typing import Any

from lightmem_textkit.models import (
    ModelInfo,
    read_model_info,
    resolve_device,
    resolve_dtype,
    resolve_model_folder,
)

#: ``context.shared`` keys: handles by (path, device, dtype), and the compressor's handle.
SHARED_HANDLES = "lightmem_llmlingua.handles"
SHARED_COMPRESSOR = "lightmem_llmlingua.compressor_handle"

_DECODER_SUFFIXES = ("ForCausalLM", "LMHeadModel", "ForConditionalGeneration")


def llmlingua_rule(info: ModelInfo) -> str | None:
    """The folder-name keyword the stock ``llmlingua`` package needs for this architecture."""
    if info.model_type == "bert":
        return "bert-base-multilingual-cased"
    if info.model_type == "xlm-roberta":
        return "xlm-roberta-large"
    return None


def check_token_classifier(info: ModelInfo, where: str) -> None:
    """Refuse a folder that is not a 2-label token classifier (an LLMLingua-2 checkpoint)."""
    if info.token_classifier and info.num_labels == 2:
        return
    hint = ""
    if any(a.endswith(_DECODER_SUFFIXES) for a in info.architectures):
        hint = " This is a causal language model: use it with pre_compressor `entropy_compress`."
    raise ValueError(
        f"{where}: {info.path!r} holds {info.describe()} with {info.num_labels} labels, but "
        "llmlingua-2 needs a token-classification encoder with 2 labels (drop / keep), such as "
        "microsoft/llmlingua-2-bert-base-multilingual-cased-meetingbank or "
        f"microsoft/llmlingua-2-xlm-roberta-large-meetingbank.{hint}"
    )


def check_encoder(info: ModelInfo, where: str) -> None:
    """Refuse a decoder-only model for attention segmentation (it needs a bidirectional encoder)."""
    if any(a.endswith(_DECODER_SUFFIXES) for a in info.architectures):
        raise ValueError(
            f"{where}: {info.path!r} holds {', '.join(info.architectures)}, a causal language "
            "model; the llmlingua-2 topic segmenter reads the attentions of a bidirectional "
            "encoder (an LLMLingua-2 checkpoint or another BERT-style model)"
        )


class ModelHandle:
    """One model and tokenizer, loaded on first use; several backends may hold the same handle."""

    def __init__(
        self,
        info: ModelInfo,
        *,
        device: str = "cpu",
        torch_dtype: str | None = None,
        stock: bool = False,
        max_batch_size: int = 50,
        max_force_token: int = 100,
    ) -> None:
        self.info = info
        self.device_map = device
        self.torch_dtype = torch_dtype
        self.stock = stock
        self.max_batch_size = max_batch_size
        self.max_force_token = max_force_token
        self.loads = 0
        self.lock = threading.RLock()
        self._model: Any = None
        self._tokenizer: Any = None
        self.prompt_compressor: Any = None
        self.device: Any = None

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def get(self) -> tuple[Any, Any]:
        """``(model, tokenizer)``, loading them the first time."""
        with self.lock:
            if self._model is None:
                self._load()
            return self._model, self._tokenizer

    def _load(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        self.device = resolve_device(self.device_map, "device_map")
        dtype = resolve_dtype(self.torch_dtype, self.device)
        where = f"model {self.info.path!r}"
        try:
            if self.stock:
                self._load_stock()
            else:
                from transformers import AutoModel, AutoModelForTokenClassification, AutoTokenizer

                auto = AutoModelForTokenClassification if self.info.token_classifier else AutoModel
                tokenizer = AutoTokenizer.from_pretrained(self.info.path, local_files_only=True)
                model = auto.from_pretrained(self.info.path, local_files_only=True, dtype=dtype)
                self._model, self._tokenizer = model.to(self.device).eval(), tokenizer
        except (OSError, ValueError, RuntimeError) as exc:
            raise RuntimeError(f"llmlingua-2: loading {where} failed: {exc}") from exc
        if not getattr(self._tokenizer, "is_fast", False):
            raise RuntimeError(
                f"llmlingua-2: {where} has no fast tokenizer (tokenizer.json); it is needed for "
                "character offsets. Re-save the tokenizer with transformers to create one"
            )
        self.loads += 1

    def _load_stock(self) -> None:
        from llmlingua import PromptCompressor

        from .offline import ensure_cl100k_base

        rule = llmlingua_rule(self.info)
        if rule is None:
            raise ValueError(
                f"engine 'llmlingua': the llmlingua package picks its word-splitting rule from "
                f"the model folder's name, which must contain 'bert-base-multilingual-cased' or "
                f"'xlm-roberta-large'; config.json says model_type {self.info.model_type!r}, "
                "which neither rule fits. Use engine 'batched' (any tokenizer works there)"
            )
        ensure_cl100k_base()
        compressor = PromptCompressor(
            model_name=self.info.path,
            device_map=str(self.device),
            model_config={"trust_remote_code": False},
            use_llmlingua2=True,
            llmlingua2_config={
                "max_batch_size": self.max_batch_size,
                "max_force_token": self.max_force_token,
            },
        )
        # llmlingua tests the folder name for its rule; give it the rule config.json implies.
        compressor.model_name = rule
        self.prompt_compressor = compressor
        self._model, self._tokenizer = compressor.model.eval(), compressor.tokenizer

    @contextlib.contextmanager
    def eager_attention(self) -> Iterator[Any]:
        """The model with eager attention (which returns attention weights) for the block."""
        model, _ = self.get()
        with self.lock:
            before = getattr(model.config, "_attn_implementation", None)
            switch = before not in (None, "eager") and hasattr(model, "set_attn_implementation")
            if switch:
                model.set_attn_implementation("eager")
            try:
                yield model
            finally:
                if switch:
                    model.set_attn_implementation(before)


def get_handle(
    context: Any,
    *,
    model_name: str,
    where: str,
    device: str,
    torch_dtype: str | None,
    token_classifier: bool,
    stock: bool = False,
    max_batch_size: int = 50,
    max_force_token: int = 100,
) -> ModelHandle:
    """Check the folder now; return a (lazy) handle, the shared one under precomp_topic_shared."""
    folder = resolve_model_folder(model_name, where)
    info = read_model_info(folder, where)
    if token_classifier:
        check_token_classifier(info, where)
    else:
        check_encoder(info, where)

    def new() -> ModelHandle:
        return ModelHandle(
            info,
            device=device,
            torch_dtype=torch_dtype,
            stock=stock,
            max_batch_size=max_batch_size,
            max_force_token=max_force_token,
        )

    if not getattr(context, "precomp_topic_shared", False):
        return new()
    handles = context.shared.setdefault(SHARED_HANDLES, {})
    key = (info.path, device, torch_dtype)
    handle = handles.get(key)
    if handle is None:
        handle = handles[key] = new()
    if stock and not handle.stock and not handle.loaded:
        handle.stock = True
    return handle
