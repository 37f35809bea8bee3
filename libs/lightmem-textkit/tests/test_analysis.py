"""The analyzer: tokens, clitics, scripts, stopwords and the light stemmer."""

from __future__ import annotations

import pytest
from lightmem_textkit.analysis import Analyzer, light_stem, word_tokens

plain = Analyzer(stopwords=False, stem=False)


@pytest.mark.parametrize(
    ("text", "terms"),
    [
        ("Hello, World!", ["hello", "world"]),
        ("my dog's name", ["my", "dog", "name"]),
        ("my dog’s name", ["my", "dog", "name"]),  # typographic apostrophe
        (
            "we're sure they've gone, I'll see, I'd go, I'm here",
            ["we", "sure", "they", "gone", "i", "see", "i", "go", "i", "here"],
        ),
        (
            "I don't, she can't, it won't",
            ["i", "do", "not", "she", "can", "not", "it", "will", "not"],
        ),
        ("O'Brien plays rock'n'roll", ["obrien", "plays", "rocknroll"]),
        ("the dogs' bowls", ["the", "dogs", "bowls"]),
        (
            "Flight 370 left at 3pm, 2023-05-07",
            ["flight", "370", "left", "at", "3pm", "2023", "05", "07"],
        ),
        ("snake_case and e-mail", ["snake", "case", "and", "e", "mail"]),
        ("Café MÜNCHEN straße", ["café", "münchen", "strasse"]),
        ("Ｆｕｌｌｗｉｄｔｈ ＡＢＣ", ["fullwidth", "abc"]),
        ("我的狗叫Rex", ["我", "的", "狗", "叫", "rex"]),
        ("東京タワーに行った", ["東", "京", "タ", "ワ", "ー", "に", "行", "っ", "た"]),
        ("서울에 갔다", ["서울에", "갔다"]),
        ("Привет, мир", ["привет", "мир"]),
        ("", []),
        ("?!... --- ;", []),
    ],
)
def test_word_tokens(text, terms):
    assert plain(text) == terms


def test_lowercase_off_keeps_case():
    assert Analyzer(lowercase=False, stopwords=False)("Rex met rex") == ["Rex", "met", "rex"]


def test_stopwords_drop_function_words_but_keep_negation():
    analyzer = Analyzer(stopwords=True, stem=False)
    assert analyzer("What is the name of my dog?") == ["name", "dog"]
    assert analyzer("I did not go") == ["not", "go"]
    assert analyzer("What is it?") == []


def test_stopwords_apply_with_case_kept():
    assert Analyzer(lowercase=False, stopwords=True)("The Dog") == ["Dog"]


@pytest.mark.parametrize(
    "group",
    [
        ("hike", "hikes", "hiking", "hiked"),
        ("paint", "paints", "painting", "painted"),
        ("run", "runs", "running"),
        ("plan", "plans", "planned", "planning"),
        ("party", "parties"),
        ("study", "studies", "studied", "studying"),
        ("box", "boxes"),
        ("watch", "watches", "watching", "watched"),
        ("class", "classes"),
        ("fall", "falls", "falling"),
    ],
)
def test_stemmer_conflates_inflections(group):
    assert len({light_stem(w) for w in group}) == 1, {w: light_stem(w) for w in group}


@pytest.mark.parametrize(
    "word", ["bus", "this", "analysis", "need", "sing", "thing", "string", "2023", "3pm", "café"]
)
def test_stemmer_leaves_these_alone(word):
    assert light_stem(word) == word


@pytest.mark.parametrize(
    ("a", "b"), [("news", "new"), ("evening", "even"), ("sing", "sign"), ("bus", "bu")]
)
def test_stemmer_keeps_these_apart(a, b):
    assert light_stem(a) != light_stem(b)


def test_query_and_record_terms_meet_through_the_stemmer():
    analyzer = Analyzer(stopwords=True, stem=True)
    assert set(analyzer("When did Melanie go hiking?")) & set(analyzer("Melanie hiked up the hill"))
    assert "hik" in analyzer("hikes")


def test_whitespace_tokenizer():
    analyzer = Analyzer(tokenizer="whitespace", stopwords=False)
    assert analyzer("Dog's  bowl, red.") == ["dog's", "bowl,", "red."]


def test_unknown_tokenizer():
    with pytest.raises(ValueError, match="tokenizer: unknown tokenizer 'nltk'"):
        Analyzer(tokenizer="nltk")


def test_word_tokens_keep_case():
    assert word_tokens("Rex's ball") == ["Rex", "ball"]
