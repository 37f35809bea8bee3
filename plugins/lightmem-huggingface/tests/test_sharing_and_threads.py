"""One model per process for every embedder of the same folder; small batches on one thread."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from lightmem_huggingface import embedder as embedder_module
from lightmem_huggingface.embedder import HuggingFaceEmbedder


def test_embedders_of_one_model_share_the_weights(minilm):
    first = HuggingFaceEmbedder(device="cpu")
    second = HuggingFaceEmbedder(device="cpu", batch_size=8)
    first.embed(["a"])
    second.embed(["b"])
    assert first._model is second._model is minilm._model
    key = embedder_module._shared_key(minilm.source, minilm.model_kwargs)
    users = embedder_module._SHARED[key][1]
    first.close()
    second.close()
    # The others still hold it; the process keeps one copy while anyone uses it.
    assert embedder_module._SHARED[key][1] == users - 2
    assert embedder_module._SHARED[key][0] is minilm._model
    np.testing.assert_allclose(minilm.embed(["a"]), HuggingFaceEmbedder(device="cpu").embed(["a"]))


def test_other_options_load_another_model(minilm):
    other = HuggingFaceEmbedder(device="cpu", model_kwargs={"truncate_dim": 64})
    assert other.embed(["x"]).shape == (1, 64)
    assert other._model is not minilm._model
    before = embedder_module.shared_model_count()
    other.close()
    assert embedder_module.shared_model_count() == before - 1  # its last user let go


def _threads_seen(embedder: HuggingFaceEmbedder, count: int) -> int:
    seen: list[int] = []
    model = embedder._load()
    original = model.encode

    def encode(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return original(*args, **kwargs)

    model.encode = encode
    try:
        embedder.embed([f"text {i}" for i in range(count)])
    finally:
        del model.encode
    return seen[0]


def test_small_batches_run_on_one_thread_and_the_count_is_restored(minilm):
    before = torch.get_num_threads()
    embedder = HuggingFaceEmbedder(device="cpu")
    assert _threads_seen(embedder, 1) == 1
    assert _threads_seen(embedder, embedder_module.SMALL_BATCH) == 1
    assert _threads_seen(embedder, embedder_module.SMALL_BATCH + 1) == before
    assert torch.get_num_threads() == before
    untouched = HuggingFaceEmbedder(device="cpu", small_batch_threads=None)
    assert _threads_seen(untouched, 1) == before  # None and None: torch's count throughout
    pinned = HuggingFaceEmbedder(device="cpu", num_threads=1, small_batch_threads=None)
    assert _threads_seen(pinned, 1) == 1  # num_threads covers every call then
    assert _threads_seen(pinned, 40) == 1
    assert torch.get_num_threads() == before


def test_concurrent_small_and_large_calls_give_the_same_vectors(minilm):
    texts = [f"memory number {i} about the garden" for i in range(40)]
    expected_big = minilm.embed(texts)
    expected_one = minilm.embed(["where is the garden"])
    results: dict[str, object] = {}

    def big() -> None:
        results["big"] = HuggingFaceEmbedder(device="cpu").embed(texts)

    def small() -> None:
        results["small"] = [minilm.embed(["where is the garden"]) for _ in range(5)]

    threads = [threading.Thread(target=big), threading.Thread(target=small)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    np.testing.assert_allclose(results["big"], expected_big, atol=1e-5)
    for vectors in results["small"]:
        np.testing.assert_allclose(vectors, expected_one, atol=1e-5)


@pytest.mark.parametrize("name", ["num_threads", "small_batch_threads"])
def test_thread_counts_must_be_positive(name):
    with pytest.raises(ValueError, match=name):
        HuggingFaceEmbedder(**{name: 0})
