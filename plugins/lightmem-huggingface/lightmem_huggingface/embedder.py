"""The ``huggingface`` text embedder: a sentence-transformers model, loaded offline on first use."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .models import (
    DEFAULT_ALIASES,
    DEFAULT_MODEL_NAME,
    bundled_model_dir,
    cached_hub_snapshot,
    downloads_allowed,
    ensure_offline_default,
    looks_like_path,
    read_dimension,
)


def _is_bundled(path: Path) -> bool:
    """Whether ``path`` is the bundled model's folder (never: when the bundle is not installed)."""
    try:
        return path.resolve() == bundled_model_dir()
    except FileNotFoundError:
        return False


class HuggingFaceEmbedder:
    """A :class:`~lightmem_hookspecs.TextEmbedder` on sentence-transformers.

    Construction is cheap: it finds the model folder and reads its size from the folder's
    config files; torch and the weights load on the first :meth:`embed`. Vectors come back as
    a float32 array of shape ``(len(texts), dimension)``, L2-normalised.
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        embedding_dims: int | None = None,
        model_kwargs: Mapping[str, Any] | None = None,
        device: str | None = None,
        batch_size: int = 32,
    ) -> None:
        ensure_offline_default()
        kwargs = dict(model_kwargs or {})
        if "model_name_or_path" in kwargs:
            raise ValueError(
                "model_kwargs: 'model_name_or_path' cannot be set here; use the `model` option"
            )
        if device is not None:
            if kwargs.get("device", device) != device:
                raise ValueError(
                    f"device: {device!r} conflicts with model_kwargs.device "
                    f"{kwargs['device']!r}; set the device in one place only"
                )
            kwargs["device"] = device
        if batch_size < 1:
            raise ValueError(f"batch_size: must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.model_kwargs = kwargs
        self.embedding_dims = embedding_dims
        self.source, self.model_name = self._locate(model)
        self._model: Any = None
        self._lock = threading.Lock()
        self._dimension: int | None = None
        folder = Path(self.source)
        declared = read_dimension(folder) if folder.is_dir() else None
        truncate = kwargs.get("truncate_dim")
        if declared is not None and isinstance(truncate, int) and truncate > 0:
            declared = min(declared, truncate)
        if declared is not None:
            self._check_dims(declared)
            self._dimension = declared

    # -- TextEmbedder ------------------------------------------------------------------------

    @property
    def dimension(self) -> int:
        """The vector size: read from the model folder, or from the model once loaded."""
        if self._dimension is None:
            if self.embedding_dims is not None:
                return self.embedding_dims  # checked against the model when it loads
            self._load()
        assert self._dimension is not None
        return self._dimension

    def embed(self, texts: Sequence[str]) -> Any:
        """One L2-normalised float32 vector per text, in order, encoded in batches."""
        import numpy as np

        texts = list(texts)
        for position, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"embed: texts[{position}] is {type(text).__name__}, expected str")
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        model = self._load()
        vectors = model.encode(
            texts,
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def close(self) -> None:
        """Drop the loaded model (it is loaded again if :meth:`embed` is called later)."""
        with self._lock:
            self._model = None

    # -- internals ---------------------------------------------------------------------------

    def _locate(self, model: str | None) -> tuple[str, str]:
        """``(what sentence-transformers loads, the stable model_name)`` without loading."""
        if model is None or model.strip().lower() in DEFAULT_ALIASES:
            return str(bundled_model_dir()), DEFAULT_MODEL_NAME
        if not model.strip():
            raise ValueError(
                "model: empty string; leave it unset for the bundled all-MiniLM-L6-v2 or give "
                "the folder of a sentence-transformers model"
            )
        path = Path(model).expanduser()
        if path.exists():
            if not path.is_dir():
                raise ValueError(
                    f"model: {model!r} is a file; give the folder that holds the model "
                    "(the one with modules.json or config.json)"
                )
            if _is_bundled(path):
                return str(path), DEFAULT_MODEL_NAME
            return str(path), model
        if looks_like_path(model):
            raise FileNotFoundError(
                f"model: the folder {model!r} does not exist (looked for {path.resolve()}). "
                "Point `model` at the folder of a sentence-transformers model (the one with "
                "modules.json or config.json), or leave it unset to use the bundled "
                "all-MiniLM-L6-v2."
            )
        snapshot = cached_hub_snapshot(model, self.model_kwargs.get("cache_folder"))
        if snapshot is not None:
            return str(snapshot), model
        if downloads_allowed():
            return model, model  # the user turned offline mode off: let the hub serve it
        raise FileNotFoundError(
            f"model: {model!r} is neither a local folder nor in the Hugging Face cache, and "
            "LightMem loads models offline (HF_HUB_OFFLINE=1), so it cannot be downloaded. "
            f"On a machine with internet access run `hf download {model} --local-dir DIR` "
            "(or save it with sentence-transformers), copy DIR here and set `model` to that "
            "folder."
        )

    def _check_dims(self, actual: int) -> None:
        if self.embedding_dims is not None and self.embedding_dims != actual:
            raise ValueError(
                f"embedding_dims: the configuration says {self.embedding_dims} but the model "
                f"{self.model_name!r} produces {actual}-dimensional vectors. Set embedding_dims "
                f"to {actual} (or remove it); to shorten a Matryoshka model's vectors use "
                'model_kwargs: {"truncate_dim": N}.'
            )

    def _load(self) -> Any:
        if self._model is not None:
            return self._model
        with self._lock:
            if self._model is None:
                ensure_offline_default()
                from sentence_transformers import SentenceTransformer

                try:
                    model = SentenceTransformer(self.source, **self.model_kwargs)
                except TypeError as exc:
                    raise ValueError(
                        f"model_kwargs: {exc}. model_kwargs are passed to "
                        "sentence_transformers.SentenceTransformer(); check their names"
                    ) from exc
                except OSError as exc:
                    raise RuntimeError(
                        f"loading the sentence-transformers model {self.model_name!r} from "
                        f"{self.source} failed: {exc}"
                    ) from exc
                get_dimension = (
                    getattr(model, "get_embedding_dimension", None)
                    or model.get_sentence_embedding_dimension
                )
                actual = get_dimension()
                if actual is None:
                    actual = int(model.encode(["dimension probe"]).shape[-1])
                self._check_dims(actual)
                if self._dimension is not None and self._dimension != actual:
                    raise RuntimeError(
                        f"the config files in {self.source} declare {self._dimension} "
                        f"dimensions but the loaded model produces {actual}: the folder is "
                        "inconsistent; re-export the model with sentence-transformers"
                    )
                self._dimension = actual
                self._model = model
        return self._model
