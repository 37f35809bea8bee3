"""Small calls without torch: a plain BERT sentence-transformers model evaluated in numpy.

A command-line search embeds one query. Loading sentence-transformers for it imports torch,
transformers and sentence-transformers (several seconds of a search that then takes
milliseconds). A model that is a BERT encoder followed by mean pooling (and normalisation), as
the bundled all-MiniLM-L6-v2 is, needs none of them for a few texts: its tokenizer is a
``tokenizer.json`` for the ``tokenizers`` library, its weights a ``model.safetensors`` that
``safetensors`` reads into numpy, and its forward pass a few matrix products. The vectors agree
with sentence-transformers' to float32 rounding (a cosine of 1 to 6 decimals; the tests check
it), so the indexes do not care which path embedded a text.

:func:`load` returns ``None`` for any other model folder (another architecture, pooling, a
dense layer, options this path does not implement), and the embedder uses sentence-transformers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

_MODULES = "sentence_transformers.models."


def _read(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def supported(folder: Path, model_kwargs: Mapping[str, Any]) -> bool:
    """Whether :class:`NumpyBert` computes what sentence-transformers would for ``folder``."""
    if set(model_kwargs) - {"device"} or model_kwargs.get("device", "cpu") != "cpu":
        return False
    try:
        modules = [m["type"].removeprefix(_MODULES) for m in _read(folder / "modules.json")]
        config = _read(folder / "config.json")
        pooling_dir = next(
            m["path"] for m in _read(folder / "modules.json") if m["type"].endswith("Pooling")
        )
        pooling = _read(folder / pooling_dir / "config.json")
    except (OSError, ValueError, KeyError, StopIteration, TypeError, AttributeError):
        return False
    mean_only = pooling.get("pooling_mode_mean_tokens") and not any(
        pooling.get(k)
        for k in (
            "pooling_mode_cls_token",
            "pooling_mode_max_tokens",
            "pooling_mode_mean_sqrt_len_tokens",
            "pooling_mode_weightedmean_tokens",
            "pooling_mode_lasttoken",
        )
    )
    return (
        modules in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"])
        and bool(mean_only)
        and config.get("model_type") == "bert"
        and config.get("hidden_act") == "gelu"
        and config.get("position_embedding_type", "absolute") == "absolute"
        and (folder / "model.safetensors").is_file()
        and (folder / "tokenizer.json").is_file()
    )


def load(folder: Path, model_kwargs: Mapping[str, Any]) -> NumpyBert | None:
    """The numpy encoder of ``folder``, or ``None`` when it does not support the model."""
    if not supported(folder, model_kwargs):
        return None
    return NumpyBert(folder)


def _erf(x: Any) -> Any:
    """The error function to 1.5e-7 (Abramowitz and Stegun 7.1.26), vectorised."""
    import numpy as np

    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    return sign * (1.0 - poly * np.exp(-a * a))


class NumpyBert:
    """A BERT encoder, mean pooling and L2 normalisation, in float32 numpy."""

    def __init__(self, folder: Path) -> None:
        import numpy as np
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        config = _read(folder / "config.json")
        try:
            max_length = int(_read(folder / "sentence_bert_config.json")["max_seq_length"])
        except (OSError, ValueError, KeyError):
            max_length = int(config.get("max_position_embeddings", 512))
        self.heads = int(config["num_attention_heads"])
        self.layers = int(config["num_hidden_layers"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=max_length)
        raw = load_file(str(folder / "model.safetensors"))
        prefix = "bert." if any(k.startswith("bert.") for k in raw) else ""
        self.w = {k.removeprefix(prefix): v.astype(np.float32, copy=False) for k, v in raw.items()}
        for name in list(self.w):  # weights as (in, out): x @ w, without a transpose per call
            if name.endswith(".weight") and self.w[name].ndim == 2 and "embeddings" not in name:
                self.w[name] = np.ascontiguousarray(self.w[name].T)
        self.dimension = int(config["hidden_size"])

    def _norm(self, x: Any, name: str) -> Any:
        import numpy as np

        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + self.eps) * self.w[f"{name}.weight"] + self.w[
            f"{name}.bias"
        ]

    def _dense(self, x: Any, name: str) -> Any:
        return x @ self.w[f"{name}.weight"] + self.w[f"{name}.bias"]

    def _one(self, ids: Sequence[int], types: Sequence[int]) -> Any:
        import numpy as np

        w, n = self.w, len(ids)
        x = (
            w["embeddings.word_embeddings.weight"][np.asarray(ids)]
            + w["embeddings.position_embeddings.weight"][:n]
            + w["embeddings.token_type_embeddings.weight"][np.asarray(types)]
        )
        x = self._norm(x, "embeddings.LayerNorm")
        size = x.shape[-1] // self.heads
        scale = np.float32(1.0 / math.sqrt(size))
        for i in range(self.layers):
            layer = f"encoder.layer.{i}"

            def heads(t: Any) -> Any:
                return t.reshape(n, self.heads, size).transpose(1, 0, 2)

            q = heads(self._dense(x, f"{layer}.attention.self.query"))
            k = heads(self._dense(x, f"{layer}.attention.self.key"))
            v = heads(self._dense(x, f"{layer}.attention.self.value"))
            scores = (q @ k.transpose(0, 2, 1)) * scale
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            context = (scores @ v).transpose(1, 0, 2).reshape(n, -1)
            attended = self._dense(context, f"{layer}.attention.output.dense")
            x = self._norm(x + attended, f"{layer}.attention.output.LayerNorm")
            inner = self._dense(x, f"{layer}.intermediate.dense")
            inner = 0.5 * inner * (1.0 + _erf(inner / np.float32(math.sqrt(2.0))))
            out = self._dense(inner.astype(np.float32), f"{layer}.output.dense")
            x = self._norm(x + out, f"{layer}.output.LayerNorm")
        pooled = x.mean(0)
        return pooled / max(float(np.linalg.norm(pooled)), 1e-12)

    def tokenize(self, texts: Sequence[str]) -> list[Any]:
        """The model's tokens of each text (cut at the model's length), for :meth:`embed`."""
        return list(self.tokenizer.encode_batch(list(texts)))

    def embed(self, encodings: Sequence[Any]) -> Any:
        """One L2-normalised float32 vector per tokenized text (each encoded alone: no padding).

        On one BLAS thread: these products are too small to split, and split they wait for
        the slowest thread (a query took 1.2 s on a busy two-core machine, 0.05 s on one).
        """
        import numpy as np
        from threadpoolctl import threadpool_limits

        out = np.zeros((len(encodings), self.dimension), dtype=np.float32)
        with threadpool_limits(limits=1, user_api="blas"):
            for row, encoding in enumerate(encodings):
                out[row] = self._one(encoding.ids, encoding.type_ids)
        return out
