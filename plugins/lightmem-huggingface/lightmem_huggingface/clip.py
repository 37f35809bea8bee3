"""The ``huggingface`` multimodal embedder: a CLIP model through sentence-transformers.

Texts and images are embedded into one space (``encode`` of strings, ``encode`` of PIL images),
L2-normalised, so a query text's dot product with an image is their similarity. The model
loads on first use: a local folder, or a name sentence-transformers knows (``clip-ViT-B-32``,
``clip-ViT-B-16``, ``clip-ViT-L-14``; ``sentence-transformers/clip-ViT-B-32-multilingual-v1``
pairs with ``clip-ViT-B-32`` images), fetched from the Hugging Face hub only where the
environment allows downloads (``HF_HUB_OFFLINE`` unset).

A search embeds one query text: for a few texts, a CLIP model's text tower is called directly
(its tokenizer, ``get_text_features``, one thread, no autograd) instead of through
``SentenceTransformer.encode``, whose per-call bookkeeping (switching every module to eval mode,
finding the device, collating features) costs several times the forward pass of a small model.
The vectors are the same; a model of another layout (a multilingual text encoder with pooling
and dense layers) goes through ``encode``.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Sequence
from typing import Any

from .embedder import SMALL_BATCH, _Threads

DEFAULT_CLIP = "clip-ViT-B-32"


class ClipEmbedder:
    """A :class:`~lightmem_hookspecs.MultimodalEmbedder` over a sentence-transformers CLIP."""

    def __init__(
        self, model: str | None = None, *, device: str | None = None, batch_size: int = 32
    ) -> None:
        self.source = model or DEFAULT_CLIP
        self.model_name = self.source
        self.device = device or "cpu"
        self.batch_size = batch_size
        self._model: Any = None
        self._dimension: int | None = None
        self._lock = threading.Lock()
        self._text_tower: Any = None  # (tokenizer, CLIP model, max length), or False: none

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                from sentence_transformers import SentenceTransformer

                try:
                    self._model = SentenceTransformer(self.source, device=self.device)
                except OSError as exc:
                    raise RuntimeError(
                        f"multimodal_embedder 'huggingface': cannot load {self.source!r} ({exc}); "
                        "give the path of a local CLIP model folder as "
                        "multimodal_embedder.configs.model, or allow downloads from the "
                        "Hugging Face hub (unset HF_HUB_OFFLINE) for a hub name such as "
                        "clip-ViT-B-32"
                    ) from exc
            return self._model

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            self._dimension = int(self.embed_texts(["dimension"]).shape[1])
        return self._dimension

    def embed_texts(self, texts: Sequence[str]) -> Any:
        model = self._load()
        # a query (a few texts) on one thread: on a busy CPU, many threads are much slower
        small = len(texts) <= SMALL_BATCH
        with _Threads(1 if small else None):
            tower = self._tower(model) if small and texts else None
            if tower:
                return _text_features(tower, list(texts))
            return model.encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )

    def _tower(self, model: Any) -> Any:
        """(tokenizer, CLIP model, max length) of a model that is one CLIP module (and at most
        a normalisation), else ``False``."""
        if self._text_tower is None:
            self._text_tower = _clip_text_tower(model)
        return self._text_tower

    def embed_images(self, images: Sequence[bytes]) -> Any:
        from PIL import Image

        model = self._load()
        opened = []
        for data in images:
            with Image.open(io.BytesIO(data)) as image:
                opened.append(image.convert("RGB"))
        return model.encode(
            opened,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )

    def close(self) -> None:
        with self._lock:
            self._model = None
            self._text_tower = None

    def __repr__(self) -> str:
        return f"ClipEmbedder(model={self.source!r}, device={self.device!r})"


def _clip_text_tower(model: Any) -> Any:
    modules = list(model) if hasattr(model, "__iter__") else []
    if not modules or any(type(m).__name__ != "Normalize" for m in modules[1:]):
        return False
    first = modules[0]
    hf = getattr(first, "model", None)
    processor = getattr(first, "processor", None)
    tokenizer = getattr(processor, "tokenizer", None)
    if not callable(getattr(hf, "get_text_features", None)) or not callable(tokenizer):
        return False
    text_config = getattr(getattr(hf, "config", None), "text_config", None)
    positions = int(getattr(text_config, "max_position_embeddings", 0) or 0)
    limit = int(getattr(first, "max_seq_length", None) or tokenizer.model_max_length)
    return tokenizer, hf, min(limit, positions) if positions else limit


def _text_features(tower: Any, texts: list[str]) -> Any:
    import numpy as np
    import torch

    tokenizer, hf, limit = tower
    encoded = tokenizer(texts, padding=True, truncation=True, max_length=limit, return_tensors="pt")
    device = next(hf.parameters()).device
    with torch.inference_mode():
        out = hf.get_text_features(
            input_ids=encoded["input_ids"].to(device),
            attention_mask=encoded["attention_mask"].to(device),
        )
    out = getattr(out, "pooler_output", out)  # an output object in newer transformers
    vectors = out.float().cpu().numpy()
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)
