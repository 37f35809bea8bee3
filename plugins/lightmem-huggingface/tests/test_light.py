"""Small calls without torch: the numpy encoder gives sentence-transformers' vectors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from lightmem_huggingface import light
from lightmem_huggingface.models import bundled_model_dir

TEXTS = [
    "what is my dog's name?",
    "  surrounded by spaces  ",
    "",
    "Ünïcödé, accents, an emoji 🐶 and 中文字符",
    "a long one, cut at the model's 256 tokens " * 40,
    "My dog is called Biscuit.\nHe loves the beach.",
]


@pytest.fixture(scope="module")
def numpy_bert():
    model = light.load(bundled_model_dir(), {})
    assert model is not None
    return model


def test_the_vectors_are_sentence_transformers_vectors(numpy_bert, minilm):
    ours = numpy_bert.embed(numpy_bert.tokenize(TEXTS))
    theirs = minilm._model.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)
    assert ours.dtype == np.float32 and ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, atol=2e-6)
    np.testing.assert_allclose((ours * theirs).sum(1), 1.0, atol=1e-6)


def test_a_small_call_in_a_fresh_process_imports_no_torch(tmp_path):
    probe = """
import json, sys
from lightmem_huggingface.embedder import HuggingFaceEmbedder
embedder = HuggingFaceEmbedder(device="cpu")
texts = ["what is my dog's name?"] + [f"My dog is called Biscuit {i}" for i in range(20)]
vectors = embedder.embed(texts)
heavy = [m for m in ("torch", "transformers", "sentence_transformers") if m in sys.modules]
print(json.dumps({"heavy": heavy, "vectors": vectors.tolist()}))
"""
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    result = json.loads(out.stdout)
    assert result["heavy"] == []
    vectors = np.asarray(result["vectors"])
    assert vectors.shape == (21, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_a_large_call_uses_sentence_transformers_and_later_small_calls_too(minilm):
    from lightmem_huggingface.embedder import LIGHT_TEXTS, HuggingFaceEmbedder

    embedder = HuggingFaceEmbedder(device="cpu")
    embedder.embed(["x"] * (LIGHT_TEXTS + 1))
    assert embedder._model is minilm._model
    embedder.embed(["a query"])
    assert embedder._light_model is False  # never built: the loaded model serves every call


def _folder(tmp_path, change):
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(bundled_model_dir(), folder, ignore=shutil.ignore_patterns("*.safetensors"))
    (folder / "model.safetensors").symlink_to(bundled_model_dir() / "model.safetensors")
    change(folder)
    return folder


def _edit(path, **changes):
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    "change",
    [
        lambda f: _edit(f / "config.json", model_type="roberta"),
        lambda f: _edit(f / "config.json", hidden_act="relu"),
        lambda f: _edit(
            f / "1_Pooling" / "config.json",
            pooling_mode_mean_tokens=False,
            pooling_mode_cls_token=True,
        ),
        lambda f: (f / "modules.json").write_text(
            json.dumps(
                [
                    *json.loads((f / "modules.json").read_text()),
                    {
                        "idx": 3,
                        "name": "3",
                        "path": "3_Dense",
                        "type": "sentence_transformers.models.Dense",
                    },
                ]
            )
        ),
        lambda f: (f / "tokenizer.json").unlink(),
    ],
    ids=["roberta", "relu", "cls-pooling", "dense-layer", "no-tokenizer-json"],
)
def test_other_models_are_left_to_sentence_transformers(tmp_path, change):
    assert light.load(_folder(tmp_path, lambda f: None), {}) is not None
    other = tmp_path / "other"
    other.mkdir()
    assert light.load(_folder(other, change), {}) is None


@pytest.mark.parametrize(
    "kwargs", [{"truncate_dim": 128}, {"device": "cuda"}, {"trust_remote_code": True}]
)
def test_options_it_does_not_implement_leave_it_out(kwargs):
    assert light.load(bundled_model_dir(), kwargs) is None


def test_a_call_over_the_token_budget_loads_sentence_transformers(tmp_path):
    probe = """
import sys
from lightmem_huggingface.embedder import LIGHT_TOKENS, HuggingFaceEmbedder
embedder = HuggingFaceEmbedder(device="cpu")
embedder.embed(["word " * 300] * 3)  # 3 x 256 tokens > LIGHT_TOKENS
print("torch" in sys.modules, embedder._model is not None)
"""
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert out.stdout.split() == ["True", "True"]
