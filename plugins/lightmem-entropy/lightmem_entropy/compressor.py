"""The ``entropy_compress`` pre-compressor: keep the words a causal LM finds most surprising.

Each token's self-information is ``-log2 p(token | prefix)`` under a small causal LM. A message
starts after the model's BOS token when it has one, so the first token is scored too. Messages
longer than the model window are scored in overlapping windows: every window after the first
starts with a quarter-window of already-scored tokens as context, so each token keeps a real
prefix and nothing is truncated. All windows of a call run in batches of similar lengths, padded
only to the longest window of the batch. A word's information is the mean of its tokens' (or its
first token's); the ``compress_rate`` share of words with the most information is kept, in order
and spelled as in the original.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Sequence
from typing import Any

from lightmem_textkit.models import ModelInfo, resolve_device, resolve_dtype
from lightmem_textkit.words import join_kept, length_batches, select, split_words, tokens_by_word

from .options import EntropyConfig


class EntropyCompressor:
    """Implements :class:`lightmem_hookspecs.PreCompressor` with a causal LM's surprisal."""

    def __init__(self, config: EntropyConfig, info: ModelInfo) -> None:
        self.config = config
        self.info = info
        self.loads = 0
        self._lock = threading.Lock()
        self._model: Any = None
        self._tokenizer: Any = None
        self._device: Any = None

    @property
    def model_name(self) -> str:
        return self.info.path

    def load(self) -> tuple[Any, Any]:
        """``(model, tokenizer)``, loaded the first time."""
        with self._lock:
            if self._model is None:
                self._load()
            return self._model, self._tokenizer

    def _load(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self._device = resolve_device(self.config.device)
        dtype = resolve_dtype(self.config.torch_dtype, self._device)
        try:
            tokenizer = AutoTokenizer.from_pretrained(self.info.path, local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(
                self.info.path, local_files_only=True, dtype=dtype
            )
        except (OSError, ValueError, RuntimeError) as exc:
            raise RuntimeError(
                f"entropy_compress: loading the model from {self.info.path!r} failed: {exc}"
            ) from exc
        if not getattr(tokenizer, "is_fast", False):
            raise RuntimeError(
                f"entropy_compress: {self.info.path!r} has no fast tokenizer (tokenizer.json); "
                "it is needed for character offsets. Re-save the tokenizer with transformers"
            )
        self._model, self._tokenizer = model.to(self._device).eval(), tokenizer
        self.loads += 1

    def compress(self, texts: Sequence[str]) -> list[str]:
        texts = list(texts)
        out = list(texts)
        todo = [i for i, text in enumerate(texts) if text.strip()]
        if not todo or self.config.compress_rate >= 1.0:
            return out
        batch = [texts[i] for i in todo]
        infos = self.token_information(batch)
        for i, text, info in zip(todo, batch, infos, strict=True):
            result = self._pick(text, info)
            if result.strip():
                out[i] = result
        return out

    def token_information(self, texts: Sequence[str]) -> list[tuple[list[tuple[int, int]], Any]]:
        """Per text: token character offsets and each token's self-information in bits
        (``nan`` for a first token without a BOS to condition on)."""
        import numpy as np
        import torch

        model, tokenizer = self.load()
        encoded = tokenizer(
            list(texts),
            add_special_tokens=False,
            return_offsets_mapping=True,
            return_attention_mask=False,
        )
        bos = tokenizer.bos_token_id
        pad = tokenizer.pad_token_id
        if pad is None:
            pad = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
        window = min(self.config.max_length, self.info.max_positions)
        values = [np.full(len(ids), np.nan) for ids in encoded["input_ids"]]
        # A piece: (text, token ids, index in the text of the piece's position 0, first scored
        # position). Position p >= 1 is predicted from positions < p.
        pieces: list[tuple[int, list[int], int, int]] = []
        for d, ids in enumerate(encoded["input_ids"]):
            for start, lead, end in plan_windows(len(ids), window, bos is not None):
                prefix = [bos] if start == 0 and bos is not None else []
                base = lead - len(prefix)
                pieces.append((d, prefix + list(ids[lead:end]), base, max(1, start - base)))
        lengths = [len(seq) for _, seq, _, _ in pieces]
        for group in length_batches(lengths, self.config.batch_size):
            batch = [pieces[p] for p in group]
            width = max(len(seq) for _, seq, _, _ in batch)
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, (_, seq, _, _) in enumerate(batch):
                ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
                mask[row, : len(seq)] = 1
            ids, mask = ids.to(self._device), mask.to(self._device)
            with torch.inference_mode():
                logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
                target = ids[:, 1:].unsqueeze(-1)
                nats = torch.logsumexp(logits, dim=-1) - logits.gather(-1, target).squeeze(-1)
            bits = (nats / math.log(2)).cpu().numpy()
            for row, (d, seq, base, scored_from) in enumerate(batch):
                values[d][base + scored_from : base + len(seq)] = bits[
                    row, scored_from - 1 : len(seq) - 1
                ]
        return [
            ([tuple(o) for o in offsets], info)
            for offsets, info in zip(encoded["offset_mapping"], values, strict=True)
        ]

    def _pick(self, text: str, scored: tuple[list[tuple[int, int]], Any]) -> str:
        import numpy as np

        offsets, info = scored
        words = split_words(text)
        groups = tokens_by_word(offsets, words)
        scores = []
        for tokens in groups:
            values = [info[t] for t in tokens if not np.isnan(info[t])]
            if not values:
                scores.append(math.nan)
            elif self.config.word_level_strategy == "first_token":
                scores.append(float(values[0]))
            else:
                scores.append(float(np.mean(values)))
        known = [s for s in scores if not math.isnan(s)]
        fill = float(np.mean(known)) if known else 0.0
        scores = [fill if math.isnan(s) else s for s in scores]
        keep = select(scores, [1] * len(words), self.config.compress_rate)
        return join_kept(text, words, keep)


def plan_windows(n: int, window: int, has_bos: bool) -> list[tuple[int, int, int]]:
    """``(start, lead, end)`` per window: it scores tokens ``start..end`` given ``lead..start``.

    The first window starts at 0 (after the BOS if any); each later one carries a quarter
    window of context before the tokens it scores.
    """
    if n == 0:
        return []
    first = window - 1 if has_bos else window
    out = [(0, 0, min(n, first))]
    context = window // 4
    start = out[0][2]
    while start < n:
        end = min(n, start + window - context)
        out.append((start, start - context, end))
        start = end
    return out
