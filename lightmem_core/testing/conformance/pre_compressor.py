"""Conformance suite for ``pre_compressor`` backends.

Subclass :class:`PreCompressorConformance` in your plugin's tests and provide a fixture::

    import pytest
    from lightmem_core.testing.conformance.pre_compressor import PreCompressorConformance

    @pytest.fixture(scope="module")
    def loaded_compressor(tmp_path_factory):
        return MyCompressor(...)          # load a real (tiny) model once per module

    class TestMyCompressor(PreCompressorConformance):
        @pytest.fixture
        def backend(self, loaded_compressor):
            return loaded_compressor

Fixtures the subclass provides:

``backend`` (required, any scope)
    A ready :class:`~lightmem_hookspecs.PreCompressor`. The suite only calls ``compress``, so one
    instance may serve every test: give it a module- or session-scoped fixture when loading a
    model is slow.

Class attributes the subclass may override:

``compresses`` (default ``True``)
    Whether the backend, as configured, drops words from a long message. Set it to ``False``
    for a backend configured to keep everything.
``batch_invariant`` (default ``True``)
    Whether a text compresses the same alone and in a batch. Padding changes float rounding on
    some devices; set it to ``False`` if near-ties may then flip.

What "keeps word order" means here: the words of an output (runs of letters, digits and ``_``,
each CJK ideograph on its own; punctuation ignored) are a subsequence of the input's words. A
compressor may drop punctuation and change spacing between words, never reorder, invent or
respell words.
"""

from __future__ import annotations

import re

from lightmem_hookspecs import PreCompressor

from .capabilities import CloseableChecks

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_WORD = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+")

TEXTS = [
    "Hi Melanie! I went hiking with my dog Rex near the lake on Saturday morning.",
    "My sister moved to Lisbon last May and started a new job as a nurse at the hospital.",
    "We adopted a cat named Pixel in 2021; she sleeps on the keyboard all day long.",
    "The meeting moved to Thursday at 3 pm, so please update the calendar invite.",
    "ok",
]


def words(text: str) -> list[str]:
    """The words of ``text`` as this suite compares them."""
    return _WORD.findall(text)


def is_subsequence(part: list[str], whole: list[str]) -> bool:
    remaining = iter(whole)
    return all(any(w == x for x in remaining) for w in part)


def long_text(sentences: int = 120) -> str:
    """Numbered sentences, far longer than a 512-token model window."""
    return " ".join(
        f"Note {i}: the orange kite number {i} flew over the harbour near pier {i}."
        for i in range(sentences)
    )


class PreCompressorConformance(CloseableChecks):
    """The ``PreCompressor`` contract. Needs a ``backend`` fixture: a ready compressor."""

    compresses: bool = True
    batch_invariant: bool = True

    def compress(self, backend, texts) -> list[str]:
        out = backend.compress(texts)
        assert isinstance(out, list), f"compress returned {type(out).__name__}, not a list"
        assert all(isinstance(t, str) for t in out), "compress returned a non-string"
        return out

    def test_implements_protocol(self, backend):
        assert isinstance(backend, PreCompressor)

    def test_one_output_per_input(self, backend):
        assert len(self.compress(backend, TEXTS)) == len(TEXTS)

    def test_empty_list(self, backend):
        assert self.compress(backend, []) == []

    def test_accepts_any_sequence(self, backend):
        assert self.compress(backend, tuple(TEXTS[:2])) == self.compress(backend, TEXTS[:2])

    def test_never_empty_for_non_empty_input(self, backend):
        texts = [*TEXTS, "a", "?!", "🙂", "   ", "\n", "2024", "我的狗叫Rex", "café, naïve"]
        for text, out in zip(texts, self.compress(backend, texts), strict=True):
            assert out.strip() or not text.strip(), f"{text!r} compressed to {out!r}"
            assert out, f"non-empty input {text!r} gave an empty string"

    def test_empty_string_stays_empty(self, backend):
        assert self.compress(backend, ["", TEXTS[0]])[0] == ""

    def test_keeps_word_order(self, backend):
        for text, out in zip(TEXTS, self.compress(backend, TEXTS), strict=True):
            assert is_subsequence(words(out), words(text)), f"{text!r} -> {out!r}"

    def test_compresses_a_long_message(self, backend):
        if not self.compresses:
            return
        text = " ".join(TEXTS[:4])
        (out,) = self.compress(backend, [text])
        assert 0 < len(words(out)) < len(words(text)), out

    def test_message_longer_than_the_model_window_is_not_truncated(self, backend):
        text = long_text()
        (out,) = self.compress(backend, [text])
        kept = words(out)
        assert is_subsequence(kept, words(text))
        late = {str(i) for i in range(90, 120)}
        assert late & set(kept), "nothing from the last quarter of a long message survived"

    def test_deterministic(self, backend):
        assert self.compress(backend, TEXTS) == self.compress(backend, TEXTS)

    def test_batch_equals_one_by_one(self, backend):
        if not self.batch_invariant:
            return
        batch = self.compress(backend, TEXTS)
        assert batch == [self.compress(backend, [t])[0] for t in TEXTS]

    def test_duplicates_in_one_batch(self, backend):
        out = self.compress(backend, [TEXTS[1], TEXTS[2], TEXTS[1]])
        assert out[0] == out[2]
