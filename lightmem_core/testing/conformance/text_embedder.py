"""Conformance suite for ``text_embedder`` backends.

Subclass :class:`TextEmbedderConformance` in your plugin's tests and provide a fixture::

    import pytest
    from lightmem_core.testing.conformance.text_embedder import TextEmbedderConformance

    @pytest.fixture(scope="module")
    def loaded_embedder():
        return MyEmbedder(...)            # load a real model once per module

    class TestMyEmbedder(TextEmbedderConformance):
        @pytest.fixture
        def backend(self, loaded_embedder):
            return loaded_embedder

Fixtures the subclass provides:

``backend`` (required, any scope)
    A ready :class:`~lightmem_hookspecs.TextEmbedder`. The suite only calls ``embed`` and reads
    ``model_name`` and ``dimension``, so one instance may be shared by every test: give it a
    module- or session-scoped fixture when loading the model is slow.

Class attributes the subclass may override:

``semantic`` (default ``True``)
    Whether the backend is a semantic model. When true, the suite also checks that related
    sentences are closer than unrelated ones. Set it to ``False`` for hashing or other
    non-semantic embedders.
``tolerance`` (default ``1e-3``)
    How far a vector's length may be from 1, and how far the same text's vector may move
    between calls (batch padding changes float rounding on some devices).

The tests check the protocol's contract: one vector of ``dimension`` finite floats per text, in
input order, L2-normalised, the same text giving the same vector whatever batch it is in, long
and non-English texts accepted.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from lightmem_hookspecs import TextEmbedder

from .capabilities import CloseableChecks

TEXTS = [
    "My dog is called Rex and he loves the beach.",
    "The stock market fell sharply on Monday.",
    "We cooked pasta with fresh basil for dinner.",
    "I started learning the violin last spring.",
    "Lisbon was warm and sunny all week.",
]


class TextEmbedderConformance(CloseableChecks):
    """The ``TextEmbedder`` contract. Needs a ``backend`` fixture: a ready embedder."""

    semantic: bool = True
    tolerance: float = 1e-3

    def embed(self, backend, texts) -> np.ndarray:
        return np.asarray(backend.embed(texts), dtype=np.float64)

    # -- attributes --------------------------------------------------------------------------

    def test_implements_protocol(self, backend):
        assert isinstance(backend, TextEmbedder)

    def test_model_name_is_a_stable_non_empty_string(self, backend):
        assert isinstance(backend.model_name, str) and backend.model_name.strip()
        self.embed(backend, TEXTS[:1])
        name = backend.model_name
        self.embed(backend, TEXTS[1:])
        assert backend.model_name == name, "model_name changed after embedding"

    def test_dimension_is_a_positive_int(self, backend):
        assert isinstance(backend.dimension, int) and not isinstance(backend.dimension, bool)
        assert backend.dimension > 0

    # -- vectors -----------------------------------------------------------------------------

    def test_one_vector_per_text(self, backend):
        vectors = self.embed(backend, TEXTS)
        assert vectors.shape == (len(TEXTS), backend.dimension)
        assert np.isfinite(vectors).all()

    def test_single_text(self, backend):
        assert self.embed(backend, [TEXTS[0]]).shape == (1, backend.dimension)

    def test_accepts_any_sequence(self, backend):
        as_tuple = self.embed(backend, tuple(TEXTS[:2]))
        assert np.allclose(as_tuple, self.embed(backend, TEXTS[:2]), atol=self.tolerance)

    def test_vectors_are_l2_normalised(self, backend):
        norms = np.linalg.norm(self.embed(backend, TEXTS), axis=1)
        assert np.allclose(norms, 1.0, atol=self.tolerance), norms

    def test_deterministic(self, backend):
        assert np.allclose(
            self.embed(backend, TEXTS), self.embed(backend, TEXTS), atol=self.tolerance
        )

    def test_order_follows_input(self, backend):
        forward = self.embed(backend, TEXTS)
        backward = self.embed(backend, list(reversed(TEXTS)))
        assert np.allclose(forward, backward[::-1], atol=self.tolerance)

    def test_batch_equals_one_by_one(self, backend):
        batch = self.embed(backend, TEXTS)
        single = np.vstack([self.embed(backend, [text]) for text in TEXTS])
        assert np.allclose(batch, single, atol=self.tolerance)

    def test_duplicates_in_one_batch(self, backend):
        vectors = self.embed(backend, [TEXTS[1], TEXTS[2], TEXTS[1]])
        assert np.allclose(vectors[0], vectors[2], atol=self.tolerance)

    def test_different_texts_differ(self, backend):
        vectors = self.embed(backend, TEXTS[:2])
        assert not np.allclose(vectors[0], vectors[1], atol=1e-2)

    def test_empty_list(self, backend):
        assert len(self.embed(backend, [])) == 0

    def test_long_text_is_accepted(self, backend):
        long_text = " ".join(["memories of a long summer by the sea"] * 400)  # ~3,200 words
        vectors = self.embed(backend, [long_text, TEXTS[0]])
        assert vectors.shape == (2, backend.dimension)
        assert math.isclose(float(np.linalg.norm(vectors[0])), 1.0, abs_tol=self.tolerance)

    def test_non_english_text_is_accepted(self, backend):
        texts = ["我的狗叫Rex", "Привет, как дела?", "café, naïve, Straße", "🙂 emoji"]
        vectors = self.embed(backend, texts)
        assert vectors.shape == (len(texts), backend.dimension)
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=self.tolerance)

    # -- meaning (semantic models only) ------------------------------------------------------

    def test_related_texts_are_closer_than_unrelated(self, backend):
        if not self.semantic:
            pytest.skip("backend declared non-semantic (semantic = False)")
        fact, question, unrelated = self.embed(
            backend,
            ["my dog is called Rex", "what is my dog's name", "the stock market fell"],
        )
        assert float(fact @ question) > float(fact @ unrelated) + 0.1
