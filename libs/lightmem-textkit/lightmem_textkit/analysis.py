"""Turns text into lexical terms (BM25 and the like): Unicode word tokens, clitics split off,
stopwords, stemming. Shared by the lexical index plugins; standard library only."""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable

# Han, Hiragana, Katakana (and their compatibility blocks): scripts written without spaces, so
# each character is a term of its own. Hangul is written with spaces and stays word-based.
_CJK = "\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_APOSTROPHES = "'\u2019\u02bc"
_LETTERS = rf"[^\W_{_CJK}]"
_TOKEN = re.compile(rf"(?P<cjk>[{_CJK}])|(?P<word>{_LETTERS}+(?:[{_APOSTROPHES}]{_LETTERS}+)*)")
_APOSTROPHE_RE = re.compile(rf"[{_APOSTROPHES}]")

#: Clitics dropped from the end of a word: "dog's" -> "dog", "we're" -> "we".
_CLITICS = ("s", "re", "ve", "ll", "d", "m")
#: Heads of "n't" contractions that are not the verb itself.
_NEGATED_HEADS = {"ca": "can", "wo": "will", "sha": "shall", "ai": "is"}

#: A small English stopword list: function words that carry no topic (wh-words included, since
#: questions are full of them and memories are not). Negations are kept.
_STOPWORD_TEXT = """
    a about above after again against all am an and any are as at be because been before being
    below between both but by could did do does doing down during each few for from further had
    has have having he her here hers herself him himself his how i if in into is it its itself
    just me more most my myself nor of off on once only or other our ours ourselves out over own
    same she should so some such than that the their theirs them themselves then there these
    they this those through to too under until up very was we were what when where which while
    who whom whose why will with would you your yours yourself yourselves also can may might must
    shall let s t d ll m re ve o y
"""
STOPWORDS: frozenset[str] = frozenset(_STOPWORD_TEXT.split())

#: Words whose ending only looks like an inflection ("news" is not the plural of "new").
_NOT_INFLECTED_TEXT = (
    "news series species always perhaps yes lens gas whereas evening ceiling sometimes"
)
_NOT_INFLECTED = frozenset(_NOT_INFLECTED_TEXT.split())
_VOWELS = frozenset("aeiouy")
_UNDOUBLE_EXCEPT = frozenset("lsz")


def _has_vowel(text: str) -> bool:
    return any(ch in _VOWELS for ch in text)


def _strip_verb_ending(word: str, ending: str) -> str | None:
    stem = word[: -len(ending)]
    if len(stem) < 3 or not _has_vowel(stem):
        return None
    if stem[-1] == stem[-2] and stem[-1] not in _VOWELS and stem[-1] not in _UNDOUBLE_EXCEPT:
        stem = stem[:-1]  # "running" -> "run", "planned" -> "plan"
    return stem


@functools.lru_cache(maxsize=1 << 16)
def light_stem(word: str) -> str:
    """A light English suffix stemmer (plurals, -ing, -ed, final -e), for lower-case ASCII words.

    It conflates the common inflections of one word ("hikes", "hiking", "hiked", "hike" all
    become "hik") and leaves short words, digits and non-English words alone. It is deliberately
    conservative: a missed conflation costs less recall than a false one costs precision.
    """
    if len(word) <= 3 or word in _NOT_INFLECTED or not word.isascii() or not word.isalpha():
        return word
    if word.endswith(("ies", "ied")) and len(word) > 4:
        word = word[:-3] + "y"  # "parties" -> "party", "studied" -> "study"
    elif word.endswith(("sses", "ches", "shes")) or (word.endswith("es") and word[-3] in "sxz"):
        word = word[:-2]  # "classes" -> "class", "boxes" -> "box"
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    elif word.endswith("ing"):
        word = _strip_verb_ending(word, "ing") or word
    elif word.endswith("ed") and not word.endswith("eed"):
        word = _strip_verb_ending(word, "ed") or word
    if len(word) > 3 and word.endswith("e") and not word.endswith("ee"):
        word = word[:-1]
    return word


def _split_clitic(token: str) -> list[str]:
    parts = _APOSTROPHE_RE.split(token)
    if len(parts) == 2:
        head, tail = parts
        if tail.lower() == "t" and head.lower().endswith("n") and len(head) > 1:
            base = head[:-1]
            return [_NEGATED_HEADS.get(base.lower(), base), "not"]
        if tail.lower() in _CLITICS:
            return [head]
    return ["".join(parts)]  # "O'Brien" -> "OBrien", "rock'n'roll" -> "rocknroll"


def word_tokens(text: str) -> list[str]:
    """Unicode word tokens, clitics split off; each Han/Kana character is a token of its own."""
    out: list[str] = []
    for match in _TOKEN.finditer(text):
        cjk, word = match.group("cjk"), match.group("word")
        if cjk is not None:
            out.append(cjk)
        elif "'" in word or "\u2019" in word or "\u02bc" in word:  # _APOSTROPHES
            out.extend(_split_clitic(word))
        else:
            out.append(word)
    return out


def whitespace_tokens(text: str) -> list[str]:
    """Whitespace-separated chunks, punctuation kept."""
    return text.split()


TOKENIZERS: dict[str, Callable[[str], list[str]]] = {
    "word": word_tokens,
    "whitespace": whitespace_tokens,
}


class Analyzer:
    """The one text-to-terms pipeline an index uses for both its records and its queries."""

    def __init__(
        self,
        *,
        tokenizer: str = "word",
        lowercase: bool = True,
        stopwords: bool = True,
        stem: bool = False,
    ) -> None:
        if tokenizer not in TOKENIZERS:
            raise ValueError(
                f"tokenizer: unknown tokenizer {tokenizer!r}; choose one of {sorted(TOKENIZERS)}"
            )
        self._split = TOKENIZERS[tokenizer]
        self.lowercase = lowercase
        self.stopwords = stopwords
        self.stem = stem

    def __call__(self, text: str) -> list[str]:
        text = unicodedata.normalize("NFKC", text)
        if self.lowercase:
            text = text.casefold()
        terms = []
        for token in self._split(text):
            lower = token if self.lowercase else token.lower()
            if self.stopwords and lower in STOPWORDS:
                continue
            if self.stem and token == lower:
                token = light_stem(token)
            terms.append(token)
        return terms
