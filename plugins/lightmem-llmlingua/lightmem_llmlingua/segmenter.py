"""The ``llmlingua-2`` topic segmenter: topic shifts from encoder attention, checked by embeddings.

Attention: the buffer's messages are packed into windows that fit the encoder (consecutive windows
overlap by half, so every pair of neighbours shares a window with context around it) and run with
attention weights returned. For each window the token attentions of the chosen layers, averaged
over layers and heads, are summed into a message-by-message matrix (special tokens left out). How
strongly message ``i`` attends to its predecessor, and the predecessor to it, is compared with
how strongly each attends to the window on average (a lift, so message length and attention
sinks cancel out); the log-lifts of both directions are averaged into the pair's cohesion. The
shift before message ``i`` is minus its cohesion, averaged over the windows holding the pair:
peaks of the shift profile are the attention's boundary candidates.

Embeddings: the cosine similarity between the mean of the ``window`` turns before and from ``i``
(the configured ``text_embedder``); its local minima below a threshold are candidates too.

``combine`` reconciles them: ``confirm`` (the original LightMem rule) keeps the embedding
boundaries that have an attention candidate within ``tolerance`` turns, falling back to the
embedding boundaries when none is confirmed; ``score`` adds the two standardised profiles
(weight ``attention_weight``) and cuts at its peaks; ``attention`` uses attention alone, as
happens when no text embedder is configured.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from lightmem_hookspecs import Message

if TYPE_CHECKING:
    from .model import ModelHandle
    from .options import SegmenterOptions

Candidate = tuple[float, int]


class LLMLingua2Segmenter:
    """Implements :class:`lightmem_hookspecs.TopicSegmenter` on an encoder's attentions."""

    def __init__(
        self,
        options: SegmenterOptions,
        handle: ModelHandle,
        *,
        get_backend: Callable[[str], Any] | None = None,
    ) -> None:
        self.options = options
        self.handle = handle
        self._get_backend = get_backend
        self._embedder: Any = None
        self._embedder_checked = False

    def segment(self, messages: Sequence[Message]) -> list[int]:
        n = len(messages)
        if n < 2:
            return []
        texts = [m.content for m in messages]
        options = self.options
        shift = self.attention_shift(texts)
        embedder = self.embedder() if options.combine != "attention" else None
        if embedder is None:
            chosen = _peaks(shift, _cut(shift, options.attention_z))
            return _spaced(chosen, n, options.min_segment)
        sims = similarity_profile(embedder.embed(texts), options.window)
        drops = [-s for s in sims]
        if options.combine == "confirm":
            cut = -options.threshold if options.threshold is not None else _cut(drops, options.z)
            from_embeddings = _peaks(drops, cut)
            from_attention = [i for _, i in _peaks(shift, _cut(shift, options.attention_z))]
            confirmed = [
                (strength, i)
                for strength, i in from_embeddings
                if any(abs(i - a) <= options.tolerance for a in from_attention)
            ]
            chosen = confirmed or from_embeddings
        else:
            w = options.attention_weight
            combined = [
                w * a + (1 - w) * e
                for a, e in zip(_standardise(shift), _standardise(drops), strict=True)
            ]
            chosen = _peaks(combined, options.z)
        return _spaced(chosen, n, options.min_segment)

    def embedder(self) -> Any:
        """The configured text embedder, or ``None`` (then attention decides alone)."""
        if not self._embedder_checked:
            self._embedder_checked = True
            if self._get_backend is not None:
                self._embedder = self._get_backend("text_embedder")
        return self._embedder

    # -- attention -------------------------------------------------------------------------

    def attention_shift(self, texts: Sequence[str]) -> list[float]:
        """``shift[i - 1]``: how much message ``i`` turns away from message ``i - 1``."""
        import numpy as np
        import torch

        n = len(texts)
        _, tokenizer = self.handle.get()
        window = max(2, min(self.options.buffer_len, self.handle.info.max_positions) - 2)
        cap = max(1, window // 2)
        ids = tokenizer(
            list(texts),
            add_special_tokens=False,
            return_attention_mask=False,
            return_token_type_ids=False,
        )["input_ids"]
        ids = [x if len(x) <= cap else x[: cap - cap // 2] + x[len(x) - cap // 2 :] for x in ids]
        cls_id = _first_id(tokenizer, "cls_token_id", "bos_token_id")
        sep_id = _first_id(tokenizer, "sep_token_id", "eos_token_id")
        pad_id = _first_id(tokenizer, "pad_token_id") or 0
        total = np.zeros(n - 1)
        count = np.zeros(n - 1)
        windows = pack_windows([len(x) for x in ids], window)
        size = self.options.max_batch_size
        with self.handle.eager_attention() as model:
            layers = self._layers(model)
            device = self.handle.device
            for first in range(0, len(windows), size):
                batch = windows[first : first + size]
                bodies = [_window_ids(ids[a:b], cls_id, sep_id) for a, b in batch]
                width = max(len(body) for body, _ in bodies)
                input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for row, (body, _) in enumerate(bodies):
                    input_ids[row, : len(body)] = torch.tensor(body, dtype=torch.long)
                    mask[row, : len(body)] = 1
                with torch.inference_mode():
                    out = model(
                        input_ids=input_ids.to(device),
                        attention_mask=mask.to(device),
                        output_attentions=True,
                    )
                if not out.attentions:
                    raise RuntimeError(
                        f"llmlingua-2 segmenter: model {self.handle.info.path!r} returned no "
                        "attention weights; it needs an encoder that supports eager attention"
                    )
                summed = sum(out.attentions[k].float().sum(dim=1) for k in layers)
                mean = summed / (len(layers) * out.attentions[layers[0]].shape[1])
                most = max(len(spans) for _, spans in bodies)
                indicator = torch.zeros((len(batch), width, most), device=mean.device)
                for row, (_, spans) in enumerate(bodies):
                    for i, (start, end) in enumerate(spans):
                        indicator[row, start:end, i] = 1.0
                blocks = (indicator.transpose(1, 2) @ mean @ indicator).cpu().numpy()
                lengths = indicator.sum(dim=1).cpu().numpy()
                for row, ((a, _b), (_, spans)) in enumerate(zip(batch, bodies, strict=True)):
                    k = len(spans)
                    for j, value in pair_cohesion(blocks[row, :k, :k], lengths[row, :k]):
                        total[a + j - 1] -= value
                        count[a + j - 1] += 1
        known = count > 0
        shift = np.zeros(n - 1)
        shift[known] = total[known] / count[known]
        if known.any():
            shift[~known] = shift[known].mean()
        return [float(v) for v in shift]

    def _layers(self, model: Any) -> list[int]:
        depth = int(
            getattr(model.config, "num_hidden_layers", 0) or self.handle.info.num_layers or 1
        )
        if self.options.layers is None:
            return list(range(max(0, depth - 4), depth))
        chosen = []
        for k in self.options.layers:
            if not -depth <= k < depth:
                raise ValueError(
                    f"topic_segmenter.configs.layers: layer {k} does not exist in "
                    f"{self.handle.info.path!r}, which has {depth} layers (0..{depth - 1}, "
                    "or negative from the top)"
                )
            chosen.append(k % depth)
        return chosen


def _window_ids(
    messages: Sequence[Sequence[int]], cls_id: int | None, sep_id: int | None
) -> tuple[list[int], list[tuple[int, int]]]:
    body: list[int] = [] if cls_id is None else [cls_id]
    spans = []
    for ids in messages:
        spans.append((len(body), len(body) + len(ids)))
        body.extend(ids)
    if sep_id is not None:
        body.append(sep_id)
    return body, spans


def pack_windows(lengths: Sequence[int], window: int) -> list[tuple[int, int]]:
    """Message ranges ``[a, b)`` of at most ``window`` tokens, each at least two messages long,
    overlapping by half so that every pair of neighbours shares a window."""
    n = len(lengths)
    out: list[tuple[int, int]] = []
    start = 0
    while True:
        end, used = start, 0
        while end < n and used + lengths[end] <= window:
            used += lengths[end]
            end += 1
        end = max(end, min(n, start + 2))
        out.append((start, end))
        if end >= n:
            return out
        start = max(start + 1, end - max(1, (end - start) // 2))


def message_blocks(attention: Any, spans: Sequence[tuple[int, int]]) -> tuple[Any, Any]:
    """``(block, lengths)``: ``block[i, j]`` is the attention mass from message ``i``'s tokens to
    message ``j``'s in a token-by-token ``attention`` matrix (rows attend to columns)."""
    import numpy as np

    indicator = np.zeros((attention.shape[0], len(spans)))
    for i, (a, b) in enumerate(spans):
        indicator[a:b, i] = 1.0
    return indicator.T @ attention @ indicator, indicator.sum(axis=0)


def pair_cohesion(block: Any, lengths: Any) -> list[tuple[int, float]]:
    """``(j, cohesion)`` for each neighbour pair ``(j - 1, j)`` of a window's messages.

    ``block`` is the window's message-by-message attention mass, ``lengths`` the messages'
    token counts (see :func:`message_blocks`).
    """
    import numpy as np

    k = len(lengths)
    out = []
    with np.errstate(divide="ignore", invalid="ignore"):
        per_token = block / lengths[:, None]
        density = per_token / lengths[None, :]
        average = per_token.sum(axis=1) / lengths.sum()
        lift = density / average[:, None]
    for j in range(1, k):
        if lengths[j] == 0 or lengths[j - 1] == 0:
            continue
        forward, backward = float(lift[j, j - 1]), float(lift[j - 1, j])
        if not (forward > 0 and backward > 0 and math.isfinite(forward * backward)):
            continue
        out.append((j, 0.5 * (math.log(forward) + math.log(backward))))
    return out


# -- embeddings and peak picking ---------------------------------------------------------


def similarity_profile(vectors: Any, window: int) -> list[float]:
    """``sims[i - 1]``: cosine similarity of the ``window`` turns before ``i`` and from ``i`` on."""
    import numpy as np

    v = np.asarray(vectors, dtype=np.float64)
    v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    n = len(v)
    sims = []
    for i in range(1, n):
        left = v[max(0, i - window) : i].mean(axis=0)
        right = v[i : min(n, i + window)].mean(axis=0)
        denom = float(np.linalg.norm(left) * np.linalg.norm(right)) or 1e-12
        sims.append(float(left @ right) / denom)
    return sims


def _cut(profile: Sequence[float], z: float) -> float:
    mean = sum(profile) / len(profile)
    std = math.sqrt(sum((p - mean) ** 2 for p in profile) / len(profile))
    return mean + z * std


def _standardise(profile: Sequence[float]) -> list[float]:
    mean = sum(profile) / len(profile)
    std = math.sqrt(sum((p - mean) ** 2 for p in profile) / len(profile))
    return [(p - mean) / std if std > 1e-12 else 0.0 for p in profile]


def _peaks(profile: Sequence[float], cut: float) -> list[Candidate]:
    """Local maxima of ``profile`` above ``cut`` as ``(strength, boundary index)``."""
    out = []
    for k, value in enumerate(profile):
        left = profile[k - 1] if k > 0 else -math.inf
        right = profile[k + 1] if k + 1 < len(profile) else -math.inf
        if value >= left and value >= right and value > cut:
            out.append((value, k + 1))
    return out


def _spaced(candidates: Sequence[Candidate], n: int, min_segment: int) -> list[int]:
    """The strongest candidates that leave every topic at least ``min_segment`` messages."""
    chosen: list[int] = []
    for _, index in sorted(candidates, key=lambda c: (-c[0], c[1])):
        if index < min_segment or n - index < min_segment:
            continue
        if all(abs(index - c) >= min_segment for c in chosen):
            chosen.append(index)
    return sorted(chosen)


def _first_id(tokenizer: Any, *names: str) -> int | None:
    for name in names:
        value = getattr(tokenizer, name, None)
        if value is not None:
            return int(value)
    return None
