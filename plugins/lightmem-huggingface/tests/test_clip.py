"""The ``huggingface`` multimodal embedder on a tiny random CLIP built here (no hub access).

The weights are random, so which image a text is nearest to means nothing: these tests check
the wiring (texts and images in one normalised space of the model's dimension; an image added
through LightMemory is embedded, searchable as an image and deleted with its file). Which image
comes first is tested in the core with the reference embedder, whose vectors are known.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from lightmem_huggingface.clip import ClipEmbedder

from lightmem_core import LightMemory
from lightmem_core.testing.reference import colour_png, data_uri
from lightmem_core.testing.tiny_models import build_tiny_clip


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    return build_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))


def test_texts_and_images_share_one_normalised_space(tiny_clip):
    embedder = ClipEmbedder(str(tiny_clip))
    texts = embedder.embed_texts(["the picture of my dog at the beach", "a red square"])
    images = embedder.embed_images([colour_png("red"), colour_png("blue", size=30)])
    assert embedder.dimension == 16
    assert texts.shape == images.shape == (2, 16)
    assert np.allclose(np.linalg.norm(texts, axis=1), 1.0, atol=1e-5)
    assert np.allclose(np.linalg.norm(images, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(images[0], images[1])  # different images, different vectors


def test_a_missing_model_says_how_to_get_one(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RuntimeError, match=r"local CLIP model folder"):
        ClipEmbedder(str(tmp_path / "no-model")).embed_texts(["x"])


@pytest.mark.slow
def test_an_image_through_lightmemory_with_the_tiny_clip(tiny_clip, tmp_path):
    config = {
        "memory_dir": str(tmp_path / "mem"),
        "retrieve_strategy": "context",
        "context_retriever": {"model_name": "sqlite-bm25"},
        "text_embedder": None,
        "embedding_retriever": None,
        "multimodal_embedder": {"model_name": "huggingface", "configs": {"model": str(tiny_clip)}},
    }
    with LightMemory(config) as mem:  # the installed plugins, found through their entry points
        mem.add(
            [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "My dog at the beach"},
                        {"type": "image_url", "image_url": {"url": data_uri(colour_png("red"))}},
                    ],
                }
            ]
        )
        hits = mem.search("a photo of a dog", limit=5)
        (hit,) = [h for h in hits if "multimodal" in h.scores]
        assert hit.entry.category == "image"
        path = hit.entry.metadata["image"]["path"]
        assert os.path.isfile(path)
        mem.delete(hit.entry.id)
        assert not os.path.exists(path)


def test_a_query_through_the_text_tower_is_the_vector_encode_gives(tiny_clip):
    embedder = ClipEmbedder(str(tiny_clip))
    long = " ".join(["the dog ran along the beach with a red ball"] * 20)  # truncated
    texts = ["the picture of my dog at the beach", "a red square", long]
    direct = embedder.embed_texts(texts)  # a few texts: the text tower, called directly
    assert embedder._text_tower  # the tiny CLIP has one
    through_encode = embedder._load().encode(texts, normalize_embeddings=True)
    assert direct.shape == through_encode.shape == (3, 16)
    assert np.allclose(direct, through_encode, atol=1e-5)
    many = embedder.embed_texts(texts * 3)  # a batch: through encode
    assert np.allclose(many[:3], direct, atol=1e-5)


@pytest.mark.slow
def test_another_clip_is_refused_until_lightmem_reindex_embeds_the_images_again(
    tiny_clip, tmp_path
):
    """Two tiny random CLIPs: the image index records which made its vectors; opened with the
    other, its use is refused naming ``lightmem reindex``, which embeds the images again from
    their files (a missing referenced file is reported, not a crash)."""
    import json
    import subprocess
    import sys

    from lightmem_core.images import ImageEmbedderChangedError, image_index
    from lightmem_core.testing.tiny_models import build_tiny_clip

    other = build_tiny_clip(tmp_path / "other-clip", seed=1)
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "beach.png").write_bytes(colour_png("yellow"))

    def config(model) -> dict:
        return {
            "memory_dir": str(tmp_path / "mem"),
            "retrieve_strategy": "context",
            "context_retriever": {"model_name": "sqlite-bm25"},
            "text_embedder": None,
            "embedding_retriever": None,
            "topic_segment": False,
            "multimodal_embedder": {"model_name": "huggingface", "configs": {"model": str(model)}},
            "images": {"allowed_roots": [str(photos)], "storage": "reference"},
        }

    def image(url: str) -> dict:
        return {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}

    with LightMemory(config(tiny_clip)) as mem:
        mem.add([image(data_uri(colour_png("red"))), image(f"file://{photos / 'beach.png'}")])
        copied, referenced = sorted(
            (e for e in mem.get_all() if e.category == "image"),
            key=lambda e: e.metadata["image"]["storage"],
        )
        assert referenced.metadata["image"]["storage"] == "reference"
    with LightMemory(config(other)) as mem:
        with pytest.raises(ImageEmbedderChangedError, match="lightmem reindex") as info:
            mem.search("a photo of a dog", limit=5)
        assert str(tiny_clip) in str(info.value) and str(other) in str(info.value)
    (photos / "beach.png").unlink()
    path = tmp_path / "other.json"
    path.write_text(json.dumps(config(other)))
    out = subprocess.run(
        [sys.executable, "-m", "lightmem_core.cli", "reindex", "--config", str(path)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert referenced.id in out.stderr and "the file is missing" in out.stderr
    with LightMemory(config(other)) as mem:
        index = image_index(mem._rt)
        expected = ClipEmbedder(str(other)).embed_images([colour_png("red")])[0]
        assert np.allclose(index.vector(copied.id), expected, atol=1e-5)  # the new space
        assert index.vector(referenced.id) is None  # its file is gone: left out
        hits = [h for h in mem.search("a photo of a dog", limit=5) if "multimodal" in h.scores]
        assert [h.entry.id for h in hits] == [copied.id]
        assert os.path.isfile(copied.metadata["image"]["path"])
