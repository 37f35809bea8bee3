"""Words as character spans, tokens mapped onto them, and text rebuilt from the kept words."""

from __future__ import annotations

import random

from lightmem_textkit.words import (
    join_kept,
    length_batches,
    select,
    split_words,
    tokens_by_word,
    word_of_tokens,
)


def test_words_split_punctuation_and_cjk():
    text = "Hello, world. I don't 我的狗 🙂 naïve"
    assert [text[a:b] for a, b in split_words(text)] == [
        "Hello", ",", "world", ".", "I", "don", "'", "t", "我", "的", "狗", "🙂", "naïve",
    ]  # fmt: skip


def test_tokens_map_onto_words_by_offsets():
    words_ = [(0, 5), (5, 6), (7, 12)]  # "Hello" "," "world"
    offsets = [(0, 2), (2, 5), (5, 6), (7, 7), (7, 12), (6, 7)]
    assert tokens_by_word(offsets, words_) == [[0, 1], [2], [3, 4]]


def test_join_keeps_original_spelling_and_separates_dropped_stretches():
    text = "Hello, world.\nI don't know 我的狗"
    spans = split_words(text)
    keep = [w not in {",", "'", "的"} for w in (text[a:b] for a, b in spans)]
    assert join_kept(text, spans, keep) == "Hello world.\nI don t know 我狗"


def test_select_keeps_the_share_with_forced_words_and_ties_in_order():
    assert select([0.9, 0.1, 0.8, 0.2], [1, 1, 1, 1], 0.5) == [True, False, True, False]
    assert select([0.9, 0.1, 0.8, 0.2], [1, 1, 1, 1], 0.5, [False, True, False, False]) == [
        True, True, False, False,
    ]  # fmt: skip
    assert select([0.5, 0.5, 0.5], [1, 1, 1], 0.3) == [True, False, False]
    assert select([0.1], [3], 0.01) == [True]
    assert select([], [], 0.5) == []


def test_length_batches_bound_padding_and_size():
    rng = random.Random(1)
    lengths = [rng.randint(1, 120) for _ in range(300)]
    batches = length_batches(lengths, max_batch=16, waste=0.3)
    assert sorted(i for b in batches for i in b) == list(range(300))
    for batch in batches:
        assert len(batch) <= 16
        widths = [lengths[i] for i in batch]
        assert widths == sorted(widths, reverse=True)
        assert len(batch) == 1 or len(batch) * widths[0] <= 1.3 * sum(widths)
    assert length_batches([], 4) == []


def test_each_token_belongs_to_its_first_word():
    groups = [[0, 1], [1, 2], []]  # token 1 spans two words; token 3 is whitespace
    assert word_of_tokens(4, groups) == [0, 0, 1, -1]
