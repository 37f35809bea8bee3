"""The llmlingua-2 pre-compressor on a tiny random LLMLingua-2-shaped model."""

from __future__ import annotations

import itertools
import json
import shutil

import numpy as np
import pytest
from lightmem_textkit.words import split_words, tokens_by_word, word_of_tokens

from lightmem_core.testing.conformance.pre_compressor import TEXTS, is_subsequence, long_text, words

ARTICLE = " ".join(TEXTS[:4]) + " " + long_text(6)


def token_count(compressor, text: str) -> int:
    _, tokenizer = compressor.handle.get()
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


# -- compression ------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [0.3, 0.5, 0.8])
def test_keeps_about_the_requested_share_of_tokens(make_compressor, tiny_classifier, rate):
    compressor = make_compressor(tiny_classifier, rate=rate)
    (out,) = compressor.compress([ARTICLE])
    share = token_count(compressor, out) / token_count(compressor, ARTICLE)
    assert rate - 0.05 <= share <= rate + 0.1, share
    assert is_subsequence(words(out), words(ARTICLE))


def test_lower_rate_keeps_fewer_words(make_compressor, tiny_classifier):
    low = make_compressor(tiny_classifier, rate=0.3).compress([ARTICLE])[0]
    high = make_compressor(tiny_classifier, rate=0.8).compress([ARTICLE])[0]
    assert len(words(low)) < len(words(high)) < len(words(ARTICLE))
    assert is_subsequence(words(low), words(high))  # the same ranking, cut lower


def test_target_token_caps_each_message(make_compressor, tiny_classifier):
    compressor = make_compressor(tiny_classifier, rate=1.0, target_token=20)
    out = compressor.compress([ARTICLE, TEXTS[4]])
    assert token_count(compressor, out[0]) <= 25
    assert out[1] == TEXTS[4]


def test_force_tokens_and_digits_are_kept(make_compressor, tiny_classifier):
    text = TEXTS[2] + " Pixel was born in 2021 and weighs 4 kilos."
    forced = make_compressor(
        tiny_classifier, rate=0.2, force_tokens=["Pixel", "cat"], force_reserve_digit=True
    ).compress([text])[0]
    kept = words(forced)
    assert kept.count("Pixel") == 2 and "cat" in kept
    assert {"2021", "4"} <= set(kept)


def test_rate_one_returns_the_input_without_loading(make_compressor, tiny_classifier):
    compressor = make_compressor(tiny_classifier, rate=1.0)
    assert compressor.compress(TEXTS) == TEXTS
    assert not compressor.handle.loaded


def test_model_loads_lazily_and_once(make_compressor, tiny_classifier):
    compressor = make_compressor(tiny_classifier)
    assert not compressor.handle.loaded
    compressor.compress(TEXTS)
    compressor.compress(TEXTS[:1])
    assert compressor.handle.loads == 1


def test_long_message_is_chunked_not_truncated(make_compressor, tiny_classifier):
    compressor = make_compressor(tiny_classifier, rate=0.5, max_seq_len=24)
    text = long_text(12)
    _, tokenizer = compressor.handle.get()
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    offsets = [tuple(o) for o in enc["offset_mapping"]]
    spans = split_words(text)
    owner = word_of_tokens(len(offsets), tokens_by_word(offsets, spans))
    chunks = list(compressor._chunk(text, offsets, owner, 22))
    assert len(chunks) > 5
    assert chunks[0][0] == 0 and chunks[-1][1] == len(offsets)
    assert all(a < b <= a + 22 for a, b in chunks)
    assert all(prev[1] == nxt[0] for prev, nxt in itertools.pairwise(chunks))
    assert all(owner[b] != owner[b - 1] for _, b in chunks[:-1])  # cut between words
    (out,) = compressor.compress([text])
    assert {"10", "11"} & set(words(out))
    assert is_subsequence(words(out), words(text))


def test_padding_in_a_batch_does_not_change_probabilities(shared_compressor):
    model, tokenizer = shared_compressor.handle.get()
    texts = [TEXTS[4], ARTICLE]
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    together = shared_compressor._keep_probabilities(
        model, tokenizer, ids, [(0, 0, len(ids[0])), (1, 0, len(ids[1]))]
    )
    alone = shared_compressor._keep_probabilities(model, tokenizer, ids[:1], [(0, 0, len(ids[0]))])
    np.testing.assert_allclose(together[0], alone[0], atol=1e-5)


def test_probabilities_are_the_models_keep_label(shared_compressor):
    import torch

    model, tokenizer = shared_compressor.handle.get()
    ids = tokenizer([TEXTS[0]], add_special_tokens=False)["input_ids"]
    ours = shared_compressor._keep_probabilities(model, tokenizer, ids, [(0, 0, len(ids[0]))])[0]
    full = tokenizer(TEXTS[0], return_tensors="pt")
    with torch.no_grad():
        direct = model(**full).logits.softmax(-1)[0, 1:-1, 1].numpy()
    np.testing.assert_allclose(ours, direct, atol=1e-5)


# -- the stock llmlingua engine (offline tiktoken) -------------------------------------------


@pytest.fixture
def no_network(monkeypatch, tmp_path):
    """tiktoken must not fetch anything: any remote read fails the test."""
    import tiktoken.load

    real = tiktoken.load.read_file

    def read_file(blobpath: str) -> bytes:
        if blobpath.startswith(("http://", "https://")):
            raise AssertionError(f"tiktoken tried to download {blobpath}")
        return real(blobpath)

    monkeypatch.setattr(tiktoken.load, "read_file", read_file)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "empty-cache"))


@pytest.mark.slow
def test_stock_engine_runs_offline(no_network, make_compressor, tiny_classifier_llmlingua_name):
    compressor = make_compressor(tiny_classifier_llmlingua_name, engine="llmlingua", rate=0.5)
    out = compressor.compress(["", *TEXTS[:4]])
    assert out[0] == ""
    assert all(o.strip() for o in out[1:])
    assert sum(len(words(o)) for o in out[1:]) < sum(len(words(t)) for t in TEXTS[:4])


@pytest.mark.slow
def test_stock_engine_rule_comes_from_config_json(no_network, make_compressor, tiny_classifier):
    compressor = make_compressor(tiny_classifier, engine="llmlingua", rate=0.5)
    assert compressor.compress(TEXTS[:1])[0].strip()
    assert compressor.handle.prompt_compressor.model_name == "bert-base-multilingual-cased"


def test_stock_engine_explains_the_folder_name_rule(make_compressor, tiny_classifier, tmp_path):
    folder = tmp_path / "other-encoder"
    shutil.copytree(tiny_classifier, folder)
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = "distilbert"
    (folder / "config.json").write_text(json.dumps(config))
    compressor = make_compressor(str(folder), engine="llmlingua")
    with pytest.raises(RuntimeError, match=r"bert-base-multilingual-cased.*xlm-roberta-large"):
        compressor.compress(TEXTS[:1])


# -- errors ---------------------------------------------------------------------------------


def test_missing_folder(make_compressor, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"llmlingua_config\.model_name.*does not exist"):
        make_compressor(str(tmp_path / "nowhere"))


def test_hub_id_not_in_cache_is_not_downloaded(make_compressor, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(FileNotFoundError, match="never downloads"):
        make_compressor("microsoft/llmlingua-2-bert-base-multilingual-cased-meetingbank")


def test_folder_without_config(make_compressor, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no config\.json"):
        make_compressor(str(tmp_path))


def test_causal_lm_is_the_wrong_kind(make_compressor, tiny_causal_lm):
    with pytest.raises(ValueError, match=r"token-classification.*entropy_compress"):
        make_compressor(tiny_causal_lm)


def test_unavailable_cuda_is_refused_before_the_model_loads(make_compressor, tiny_classifier):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(ValueError, match=r"device_map: 'cuda' cannot be used: the installed torch"):
        make_compressor(tiny_classifier, device_map="cuda")


def test_force_tokens_over_the_limit(make_compressor, tiny_classifier):
    from lightmem_llmlingua.options import LLMLingua2Config

    with pytest.raises(ValueError, match="max_force_token"):
        make_compressor(
            tiny_classifier,
            force_tokens=["a", "b", "c"],
            llmlingua2_config=LLMLingua2Config(max_force_token=2),
        )


def test_context_is_not_shared_unless_asked(make_compressor, make_context, tiny_classifier):
    ctx = make_context(shared=False)
    first, second = make_compressor(tiny_classifier, ctx), make_compressor(tiny_classifier, ctx)
    assert first.handle is not second.handle
    assert ctx.shared == {}
