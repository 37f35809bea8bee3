"""Words of a text as character spans, the tokens inside each, and rebuilding text from kept words.

A word is a run of letters, digits and ``_``; a single CJK ideograph; or a single other
non-space character (punctuation, symbols, emoji). This is how BERT's pre-tokenizer splits text,
and it is computed from the text alone, so any tokenizer (WordPiece, SentencePiece, byte-level
BPE) maps onto the same words through its character offsets: the word-splitting rule does not
depend on the model folder's name. Compressed text is rebuilt from the original characters, so
a kept word is never altered (no ``[UNK]``, no ``##``, no changed spacing inside a word).
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Sequence

_CJK = (
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
    "\U00020000-\U0002a6df\U0002a700-\U0002ebef\U0002f800-\U0002fa1f"
)
WORD = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+|[^\w\s]")
_CJK_CHAR = re.compile(rf"[{_CJK}]")


def split_words(text: str) -> list[tuple[int, int]]:
    """The ``(start, end)`` character spans of the words of ``text``, in order."""
    return [m.span() for m in WORD.finditer(text)]


def tokens_by_word(
    offsets: Sequence[tuple[int, int]], words: Sequence[tuple[int, int]]
) -> list[list[int]]:
    """For each word, the indices of the tokens whose characters overlap it.

    A token spanning two words (a byte-level ``'t``) counts for both; a token of whitespace only
    counts for none; a zero-width token (a byte-level ``Ġ`` before a multi-byte character) counts
    for the word that starts where it stands.
    """
    starts = [s for s, _ in words]
    out: list[list[int]] = [[] for _ in words]
    for t, (start, end) in enumerate(offsets):
        end = max(end, start + 1)
        k = bisect.bisect_right(starts, start) - 1
        if k < 0 or words[k][1] <= start:
            k += 1
        while 0 <= k < len(words) and words[k][0] < end:
            out[k].append(t)
            k += 1
    return out


def word_of_tokens(n_tokens: int, groups: Sequence[Sequence[int]]) -> list[int]:
    """For each token, the first word it belongs to (``-1`` for whitespace-only tokens)."""
    out = [-1] * n_tokens
    for w, tokens in enumerate(groups):
        for t in tokens:
            if out[t] < 0:
                out[t] = w
    return out


def select(
    scores: Sequence[float],
    weights: Sequence[int],
    share: float,
    forced: Sequence[bool] | None = None,
) -> list[bool]:
    """Keep the best-scored words until they hold ``share`` of the total weight (tokens).

    Forced words are always kept and count towards the share; ties go to the earlier word; at
    least one word is kept when there is any.
    """
    n = len(scores)
    if n == 0:
        return []
    forced = forced or [False] * n
    keep = [False] * n
    budget = share * sum(weights)
    kept = 0.0
    for i in range(n):
        if forced[i]:
            keep[i] = True
            kept += weights[i]
    order = sorted(
        (i for i in range(n) if not forced[i]),
        key=lambda i: (-_finite(scores[i]), i),
    )
    for i in order:
        if kept >= budget and any(keep):
            break
        keep[i] = True
        kept += weights[i]
    return keep


def _finite(value: float) -> float:
    return value if math.isfinite(value) else -1e30


def join_kept(text: str, words: Sequence[tuple[int, int]], keep: Sequence[bool]) -> str:
    """The kept words in their original order, separated as little as the original allows.

    Words that touched in the original still touch (``world`` + ``.``); words that were apart,
    or between which something was dropped, get one space (a newline where the original had
    one), so no new word is formed (``don't`` without ``'`` gives ``don t``), except next to a
    CJK character, where the script uses no spaces.
    """
    parts: list[str] = []
    prev_end: int | None = None
    for (start, end), kept in zip(words, keep, strict=True):
        if not kept:
            continue
        if prev_end is not None:
            gap = text[prev_end:start]
            if not gap:
                sep = ""
            elif "\n" in gap:
                sep = "\n"
            elif any(c.isspace() for c in gap):
                sep = " "
            else:
                cjk = _CJK_CHAR.match(text[prev_end - 1]) or _CJK_CHAR.match(text[start])
                sep = "" if cjk else " "
            parts.append(sep)
        parts.append(text[start:end])
        prev_end = end
    return "".join(parts)


def length_batches(lengths: Sequence[int], max_batch: int, waste: float = 0.3) -> list[list[int]]:
    """Indices grouped into batches, longest first, padding at most ``waste`` of real tokens.

    Sorting by length and closing a batch when padding to its longest item would add more than
    ``waste`` extra tokens keeps the work close to the real token count (padding costs as much as
    real tokens), while similar lengths still share a forward pass.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True)
    batches: list[list[int]] = []
    current: list[int] = []
    real = 0
    for i in order:
        if current:
            width = lengths[current[0]]
            full = len(current) >= max_batch
            if full or (len(current) + 1) * width > (1 + waste) * (real + lengths[i]):
                batches.append(current)
                current, real = [], 0
        current.append(i)
        real += lengths[i]
    if current:
        batches.append(current)
    return batches
