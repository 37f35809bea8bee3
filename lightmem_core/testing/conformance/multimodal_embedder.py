"""Conformance suite for ``multimodal_embedder`` backends.

Subclass :class:`MultimodalEmbedderConformance` and provide two fixtures: ``backend`` (a ready
:class:`~lightmem_hookspecs.MultimodalEmbedder`) and ``images`` (a list of at least two local
image paths the backend can read). Vectors must have ``dimension`` floats and unit length.
"""

from __future__ import annotations

import math

import pytest
from lightmem_hookspecs import MultimodalEmbedder


class MultimodalEmbedderConformance:
    @pytest.fixture
    def backend(self):  # pragma: no cover - the subclass provides it
        raise NotImplementedError("provide a `backend` fixture")

    @pytest.fixture
    def images(self):  # pragma: no cover - the subclass provides it
        raise NotImplementedError("provide an `images` fixture: local image paths")

    def test_implements_the_protocol(self, backend):
        assert isinstance(backend, MultimodalEmbedder)

    def test_one_unit_vector_per_image(self, backend, images):
        vectors = [list(map(float, v)) for v in backend.embed_images(images)]
        assert len(vectors) == len(images)
        for v in vectors:
            assert len(v) == backend.dimension
            assert math.isclose(math.sqrt(sum(x * x for x in v)), 1.0, rel_tol=1e-3)

    def test_deterministic(self, backend, images):
        first = [list(map(float, v)) for v in backend.embed_images(images[:1])]
        second = [list(map(float, v)) for v in backend.embed_images(images[:1])]
        assert all(
            math.isclose(a, b, abs_tol=1e-5) for a, b in zip(first[0], second[0], strict=True)
        )
