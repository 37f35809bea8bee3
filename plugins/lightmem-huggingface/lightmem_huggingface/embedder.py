"""The ``huggingface`` text embedder: a sentence-transformers model, loaded offline on first use."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from . import light
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

#: Batches of at most this many texts (a query, a few turns) are encoded on one thread.
SMALL_BATCH = 8
#: A call of at most this many texts and tokens, before the process has loaded the model, is
#: embedded in numpy (light.py): about 2 s of one core at most, where loading torch and
#: sentence-transformers costs 6 s or more.
LIGHT_TEXTS, LIGHT_TOKENS = 64, 512
#: Texts per forward pass when ``batch_size`` is not set: on CPU, small batches of texts of
#: nearly equal token length pad least (attention grows with the square of the padded length);
#: on a GPU, larger batches keep it busy.
CPU_BATCH, GPU_BATCH = 16, 64

# Loaded models, shared by every embedder of this process with the same folder and options
# (several LightMemory objects, one per user or agent, load the weights once). Each value is
# ``[model, number of embedders using it]``; the last one to close drops the model.
_SHARED: dict[str, list[Any]] = {}
_SHARED_LOCK = threading.Lock()


def _shared_key(source: str, model_kwargs: Mapping[str, Any]) -> str:
    return json.dumps([source, dict(model_kwargs)], sort_keys=True, default=repr)


def shared_model_count() -> int:
    """How many distinct models this process holds (for tests and diagnostics)."""
    with _SHARED_LOCK:
        return len(_SHARED)


class _Threads:
    """Runs a block with torch using ``n`` intra-op threads, then restores the previous count.

    torch keeps the count per thread once a thread has used it, so this changes the calling
    thread only (plus the default a thread that starts using torch meanwhile would pick up).
    """

    def __init__(self, n: int | None) -> None:
        self.n = n
        self.previous: int | None = None

    def __enter__(self) -> None:
        if self.n is not None:
            import torch

            self.previous = torch.get_num_threads()
            if self.previous != self.n:
                torch.set_num_threads(self.n)

    def __exit__(self, *exc: object) -> None:
        if self.previous is not None and self.previous != self.n:
            import torch

            torch.set_num_threads(self.previous)


def _on_cpu(model: Any) -> bool:
    device = getattr(model, "device", None)
    return device is None or getattr(device, "type", "cpu") == "cpu"


def _encode(model: Any, texts: list[str], batch: int) -> Any:
    return model.encode(
        texts,
        batch_size=batch,
        convert_to_numpy=True,
        normalize_embeddings=True,
        show_progress_bar=False,
    )


def _longest_first(model: Any, texts: list[str]) -> Any:
    """Positions of ``texts`` by descending model-token length (characters without a tokenizer).

    sentence-transformers sorts a call's texts by characters; batching by tokens pads less (on
    LoCoMo turns, 17.3 k padded tokens in batches of 16 against 20.1 k in its batches of 32,
    for the same 16.6 k tokens).
    """
    import numpy as np

    tokenizer = getattr(model, "tokenizer", None)
    lengths: list[int] | None = None
    if callable(tokenizer):
        try:
            limit = getattr(model, "max_seq_length", None) or None
            ids = tokenizer(texts, truncation=limit is not None, max_length=limit)["input_ids"]
            lengths = [len(i) for i in ids]
        except (TypeError, ValueError, KeyError):  # no text tokenizer: order by characters
            lengths = None
    if lengths is None:
        lengths = [len(t) for t in texts]
    return np.argsort(-np.asarray(lengths), kind="stable")


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
        batch_size: int | None = None,
        num_threads: int | None = None,
        small_batch_threads: int | None = 1,
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
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size: must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        for name, value in (
            ("num_threads", num_threads),
            ("small_batch_threads", small_batch_threads),
        ):
            if value is not None and value < 1:
                raise ValueError(f"{name}: must be >= 1, got {value}")
        self.num_threads = num_threads
        self.small_batch_threads = small_batch_threads
        self._shared_key: str | None = None
        self.model_kwargs = kwargs
        self.embedding_dims = embedding_dims
        self.source, self.model_name = self._locate(model)
        self._model: Any = None
        self._light_model: Any = False  # not looked for yet
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
        if self._model is None and len(texts) <= LIGHT_TEXTS and not self._loaded_elsewhere():
            light = self._light()
            if light is not None:  # a query or a few texts: no torch (see light.py)
                encodings = light.tokenize(texts)
                if sum(len(e.ids) for e in encodings) <= LIGHT_TOKENS:
                    return light.embed(encodings)
        model = self._load()
        batch = self.batch_size or (CPU_BATCH if _on_cpu(model) else GPU_BATCH)
        with _Threads(self._threads_for(len(texts), model)):
            if len(texts) <= batch:
                vectors = _encode(model, texts, batch)
            else:
                vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
                order = _longest_first(model, texts)
                for start in range(0, len(order), batch):
                    rows = order[start : start + batch]
                    vectors[rows] = _encode(model, [texts[i] for i in rows], batch)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def close(self) -> None:
        """Let go of the model; the process drops it when no other embedder shares it.

        It is loaded again if :meth:`embed` is called later.
        """
        with self._lock:
            if self._model is not None and self._shared_key is not None:
                with _SHARED_LOCK:
                    slot = _SHARED.get(self._shared_key)
                    if slot is not None and slot[0] is self._model:
                        slot[1] -= 1
                        if slot[1] <= 0:
                            del _SHARED[self._shared_key]
            self._model = None
            self._light_model = False

    def _threads_for(self, count: int, model: Any) -> int | None:
        """The torch thread count for a call of ``count`` texts on CPU (None: leave it be).

        A query or a handful of texts is too little work to split: with several threads each
        layer waits for the slowest one, and when another process holds a core that wait is a
        scheduler time slice per layer (a 13 ms query took 0.5 s on 2 threads next to a busy
        process). Large batches keep ``num_threads`` (torch's default when unset).
        """
        if not _on_cpu(model):
            return None
        if count <= SMALL_BATCH and self.small_batch_threads is not None:
            return self.small_batch_threads
        return self.num_threads

    # -- internals ---------------------------------------------------------------------------

    def _loaded_elsewhere(self) -> bool:
        """Whether another embedder of this process has loaded the model already."""
        with _SHARED_LOCK:
            return _shared_key(self.source, self.model_kwargs) in _SHARED

    def _light(self) -> Any:
        """The numpy encoder of this model, built on first use; ``None`` when the model is not
        one it computes exactly (then sentence-transformers embeds every call)."""
        if self._light_model is False:
            with self._lock:
                folder = Path(self.source)
                found = light.load(folder, self.model_kwargs) if folder.is_dir() else None
                if found is not None:
                    self._check_dims(found.dimension)
                self._light_model = found
        return self._light_model

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
                key = _shared_key(self.source, self.model_kwargs)
                with _SHARED_LOCK:
                    slot = _SHARED.get(key)
                    if slot is not None:
                        self._check_dims(slot[2])
                        slot[1] += 1
                        self._model, self._shared_key = slot[0], key
                        if self._dimension is None:
                            self._dimension = slot[2]
                        return self._model
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
                with _SHARED_LOCK:
                    slot = _SHARED.get(key)
                    if slot is None:  # (another embedder may have loaded it meanwhile)
                        slot = _SHARED[key] = [model, 0, actual]
                    slot[1] += 1
                    self._model, self._shared_key = slot[0], key
        return self._model
