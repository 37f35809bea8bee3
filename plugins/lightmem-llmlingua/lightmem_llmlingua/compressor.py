"""The ``llmlingua-2`` pre-compressor: an LLMLingua-2 token classifier decides which words to keep.

LLMLingua-2 labels every token "keep" (label 1) or "drop" (label 0). The ``batched`` engine runs
the classifier itself: all messages of a call are tokenized at once, cut into chunks that fit the
model window (at sentence ends where possible, never by silent truncation), sorted by length and
run in batches of similar lengths, padded only to the longest chunk of the batch. Each word's
keep-probability is the mean (or first) of its tokens'; the best words are kept until they hold
``rate`` of the message's tokens, in their original order and spelling. The stock ``llmlingua``
package pads every chunk to 512 tokens and runs one message at a time, which is what makes it
slow; its ``compress_prompt`` stays available as ``engine: llmlingua``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from lightmem_textkit.words import (
    join_kept,
    length_batches,
    select,
    split_words,
    tokens_by_word,
    word_of_tokens,
)

if TYPE_CHECKING:
    from .model import ModelHandle
    from .options import LLMLingua2Options


class LLMLingua2Compressor:
    """Implements :class:`lightmem_hookspecs.PreCompressor` on an LLMLingua-2 checkpoint."""

    def __init__(self, options: LLMLingua2Options, handle: ModelHandle) -> None:
        self.options = options
        self.handle = handle
        config = options.compress_config
        self.force_tokens = frozenset(config.force_tokens)
        self.chunk_end_tokens = frozenset(config.chunk_end_tokens)
        self._stock_handle: ModelHandle | None = None

    @property
    def model_name(self) -> str:
        return self.handle.info.path

    def compress(self, texts: Sequence[str]) -> list[str]:
        texts = list(texts)
        out = list(texts)
        todo = [i for i, text in enumerate(texts) if text.strip()]
        config = self.options.compress_config
        if not todo or (config.rate >= 1.0 and config.target_token <= 0):
            return out
        batch = [texts[i] for i in todo]
        if self.options.engine == "llmlingua":
            results = self._compress_stock(batch)
        else:
            results = self._compress_batched(batch)
        for i, result in zip(todo, results, strict=True):
            if result.strip():
                out[i] = result
        return out

    # -- the batched engine ------------------------------------------------------------------

    def _compress_batched(self, texts: list[str]) -> list[str]:
        model, tokenizer = self.handle.get()
        encoded = tokenizer(
            texts,
            add_special_tokens=False,
            return_offsets_mapping=True,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        window = max(1, min(self.options.max_seq_len, self.handle.info.max_positions) - 2)
        docs = []
        chunks: list[tuple[int, int, int]] = []
        for d, text in enumerate(texts):
            offsets = [tuple(o) for o in encoded["offset_mapping"][d]]
            words = split_words(text)
            groups = tokens_by_word(offsets, words)
            owner = word_of_tokens(len(offsets), groups)
            docs.append((words, groups))
            chunks.extend((d, a, b) for a, b in self._chunk(text, offsets, owner, window))
        probs = self._keep_probabilities(model, tokenizer, encoded["input_ids"], chunks)
        return [
            self._pick(text, words, groups, probs[d])
            for d, (text, (words, groups)) in enumerate(zip(texts, docs, strict=True))
        ]

    def _chunk(
        self,
        text: str,
        offsets: Sequence[tuple[int, int]],
        owner: Sequence[int],
        window: int,
    ) -> Iterator[tuple[int, int]]:
        """Token ranges of at most ``window`` tokens, cut between words, at sentence ends if any."""
        n = len(offsets)

        def between_words(p: int) -> bool:
            return p >= n or owner[p] < 0 or owner[p - 1] < 0 or owner[p] != owner[p - 1]

        def ends_sentence(q: int) -> bool:
            start, end = offsets[q]
            if text[start:end].strip() in self.chunk_end_tokens:
                return True
            following = offsets[q + 1][0] if q + 1 < n else len(text)
            return "\n" in text[start:following] and "\n" in self.chunk_end_tokens

        start = 0
        while start < n:
            limit = start + window
            if limit >= n:
                yield start, n
                return
            cut = next(
                (
                    p
                    for p in range(limit, start + window // 2, -1)
                    if between_words(p) and ends_sentence(p - 1)
                ),
                None,
            )
            if cut is None:
                cut = next((p for p in range(limit, start, -1) if between_words(p)), limit)
            yield start, cut
            start = cut

    def _keep_probabilities(
        self,
        model: Any,
        tokenizer: Any,
        input_ids: Sequence[Sequence[int]],
        chunks: list[tuple[int, int, int]],
    ) -> list[Any]:
        """Per message, the keep-probability of each token, from length-bucketed padded batches."""
        import numpy as np
        import torch

        probs = [np.zeros(len(ids), dtype=np.float32) for ids in input_ids]
        cls_id = _first_id(tokenizer, "cls_token_id", "bos_token_id")
        sep_id = _first_id(tokenizer, "sep_token_id", "eos_token_id")
        pad_id = _first_id(tokenizer, "pad_token_id") or 0
        lengths = [b - a + 2 for _, a, b in chunks]
        size = self.options.llmlingua2_config.max_batch_size
        device = self.handle.device
        for group in length_batches(lengths, size):
            batch = [chunks[c] for c in group]
            head = [] if cls_id is None else [cls_id]
            tail = [] if sep_id is None else [sep_id]
            width = max(b - a for _, a, b in batch) + len(head) + len(tail)
            ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, (d, a, b) in enumerate(batch):
                body = [*head, *input_ids[d][a:b], *tail]
                ids[row, : len(body)] = torch.tensor(body, dtype=torch.long)
                mask[row, : len(body)] = 1
            with torch.inference_mode():
                logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
            keep = logits.float().softmax(dim=-1)[..., 1].cpu().numpy()
            for row, (d, a, b) in enumerate(batch):
                probs[d][a:b] = keep[row, len(head) : len(head) + b - a]
        return probs

    def _pick(
        self,
        text: str,
        words: list[tuple[int, int]],
        groups: list[list[int]],
        probs: Any,
    ) -> str:
        config = self.options.compress_config
        first = config.token_to_word == "first"
        scores, weights, forced = [], [], []
        for (start, end), tokens in zip(words, groups, strict=True):
            if tokens:
                scores.append(float(probs[tokens[0]] if first else probs[tokens].mean()))
            else:
                scores.append(0.0)
            weights.append(len(tokens))
            word = text[start:end]
            forced.append(
                word in self.force_tokens
                or (config.force_reserve_digit and any(c.isdigit() for c in word))
            )
        share = config.rate
        total = sum(weights)
        if config.target_token > 0 and total:
            share = min(1.0, config.target_token / total)
        return join_kept(text, words, select(scores, weights, share, forced))

    # -- the stock llmlingua engine ---------------------------------------------------------

    def _compress_stock(self, texts: list[str]) -> list[str]:
        compressor = self._prompt_compressor()
        config = self.options.compress_config
        out = []
        for text in texts:
            result = compressor.compress_prompt(
                [text],
                rate=config.rate,
                target_token=config.target_token,
                use_context_level_filter=False,
                force_tokens=list(config.force_tokens),
                force_reserve_digit=config.force_reserve_digit,
                token_to_word=config.token_to_word,
                chunk_end_tokens=list(config.chunk_end_tokens),
            )
            out.append(str(result["compressed_prompt"]))
        return out

    def _prompt_compressor(self) -> Any:
        self.handle.get()
        if self.handle.prompt_compressor is not None:
            return self.handle.prompt_compressor
        if self._stock_handle is None:
            # The shared handle was loaded as a plain model first: llmlingua needs its own.
            from .model import ModelHandle

            self._stock_handle = ModelHandle(
                self.handle.info,
                device=self.handle.device_map,
                torch_dtype=self.handle.torch_dtype,
                stock=True,
                max_batch_size=self.options.llmlingua2_config.max_batch_size,
                max_force_token=self.options.llmlingua2_config.max_force_token,
            )
        self._stock_handle.get()
        return self._stock_handle.prompt_compressor


def _first_id(tokenizer: Any, *names: str) -> int | None:
    for name in names:
        value = getattr(tokenizer, name, None)
        if value is not None:
            return int(value)
    return None
