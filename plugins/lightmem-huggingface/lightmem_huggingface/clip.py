"""The ``huggingface`` multimodal embedder: a CLIP model through sentence-transformers.

Texts and images are embedded into one space (``encode`` of strings, ``encode`` of PIL images),
L2-normalised, so a query text's dot product with an image is their similarity. The model
loads on first use: a local folder, or a name sentence-transformers knows (``clip-ViT-B-32``,
``clip-ViT-B-16``, ``clip-ViT-L-14``; ``sentence-transformers/clip-ViT-B-32-multilingual-v1``
pairs with ``clip-ViT-B-32`` images), fetched from the Hugging Face hub only where the
environment allows downloads (``HF_HUB_OFFLINE`` unset).
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
        with _Threads(1 if len(texts) <= SMALL_BATCH else None):
            return model.encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )

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

    def __repr__(self) -> str:
        return f"ClipEmbedder(model={self.source!r}, device={self.device!r})"
