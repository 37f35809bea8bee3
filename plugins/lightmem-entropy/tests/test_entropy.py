"""entropy_compress on a tiny random GPT-2: information, windows, selection, errors, end to end."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys

import lightmem_entropy.plugin as plugin
import numpy as np
import pytest
from lightmem_entropy.compressor import plan_windows
from lightmem_hookspecs import BackendContext, PreCompressor
from lightmem_textkit.words import split_words

from lightmem_core.config import BackendSpec, resolve_backend
from lightmem_core.errors import ConfigError
from lightmem_core.testing import fresh_host
from lightmem_core.testing.conformance.pre_compressor import TEXTS, is_subsequence, long_text, words

ARTICLE = " ".join(TEXTS[:4])


def direct_information(compressor, text):
    """Self-information of each token from one unbatched, unpadded forward pass after BOS."""
    import torch

    model, tokenizer = compressor.load()
    ids = [tokenizer.bos_token_id, *tokenizer(text, add_special_tokens=False)["input_ids"]]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0, :-1]
    logp = logits.log_softmax(-1).gather(-1, torch.tensor(ids[1:])[:, None])[:, 0]
    return (-logp / math.log(2)).numpy()


# -- information -----------------------------------------------------------------------------


def test_information_is_the_models_surprisal(loaded_compressor):
    texts = [TEXTS[0], TEXTS[4], ARTICLE]
    scored = loaded_compressor.token_information(texts)
    for text, (offsets, info) in zip(texts, scored, strict=True):
        assert len(offsets) == len(info) and not np.isnan(info).any()
        np.testing.assert_allclose(info, direct_information(loaded_compressor, text), atol=1e-4)


def test_windows_cover_every_token_once():
    for n in (1, 5, 16, 17, 100, 257):
        for window, bos in ((16, True), (16, False), (64, True)):
            plan = plan_windows(n, window, bos)
            assert plan[0][0] == 0 and plan[-1][2] == n
            assert all(prev[2] == nxt[0] for prev, nxt in itertools.pairwise(plan))
            for i, (start, lead, end) in enumerate(plan):
                assert lead <= start < end
                prefix = 1 if i == 0 and bos else 0
                assert end - lead + prefix <= window
                assert i == 0 or start - lead == window // 4
    assert plan_windows(0, 16, True) == []


def test_long_message_is_scored_in_windows_with_context(make_compressor, tiny_gpt2):
    compressor = make_compressor(tiny_gpt2, max_length=16, batch_size=4)
    text = long_text(6)
    ((_, windowed),) = compressor.token_information([text])
    full = direct_information(compressor, text)
    assert len(windowed) == len(full) > 60 and not np.isnan(windowed).any()
    np.testing.assert_allclose(windowed[:15], full[:15], atol=1e-4)  # the first window


def test_first_token_without_bos_is_unscored(make_compressor, tiny_gpt2):
    compressor = make_compressor(tiny_gpt2)
    _, tokenizer = compressor.load()
    tokenizer.bos_token = None
    try:
        ((_, info),) = compressor.token_information([TEXTS[0]])
    finally:
        tokenizer.bos_token = "<|endoftext|>"
    assert np.isnan(info[0]) and not np.isnan(info[1:]).any()
    out = compressor.compress([TEXTS[0]])[0]  # still compresses, first word scored as average
    assert is_subsequence(words(out), words(TEXTS[0]))


# -- selection -------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [0.2, 0.5, 0.9])
def test_keeps_the_share_of_words(make_compressor, tiny_gpt2, rate):
    (out,) = make_compressor(tiny_gpt2, compress_rate=rate).compress([ARTICLE])
    n = len(split_words(ARTICLE))
    assert len(split_words(out)) == math.ceil(rate * n)
    assert is_subsequence(words(out), words(ARTICLE))


@pytest.mark.parametrize(("strategy", "kept"), [("average", "beta"), ("first_token", "alpha")])
def test_word_level_strategy(make_compressor, tiny_gpt2, strategy, kept):
    compressor = make_compressor(tiny_gpt2, compress_rate=0.5, word_level_strategy=strategy)
    text = "alpha beta"
    # "alpha" = tokens 0,1 (9 and 1 bits: first 9, mean 5); "beta" = token 2 (6 bits)
    scripted = [([(0, 2), (2, 5), (6, 10)], np.array([9.0, 1.0, 6.0]))]
    compressor.token_information = lambda texts: scripted
    assert compressor.compress([text]) == [kept]


def test_rate_one_and_blank_texts_load_nothing(make_compressor, tiny_gpt2):
    assert make_compressor(tiny_gpt2, compress_rate=1.0).compress(TEXTS) == TEXTS
    compressor = make_compressor(tiny_gpt2)
    assert compressor.compress(["", "  "]) == ["", "  "]
    assert compressor.loads == 0
    compressor.compress(TEXTS)
    compressor.compress(TEXTS[:1])
    assert compressor.loads == 1


# -- errors ----------------------------------------------------------------------------------


def test_missing_folder(make_compressor, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"entropy_config\.model_name.*does not exist"):
        make_compressor(str(tmp_path / "none"))


def test_default_hub_name_is_not_downloaded(make_compressor, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(FileNotFoundError, match="never downloads"):
        make_compressor("gpt2")


def test_token_classifier_is_the_wrong_kind(make_compressor, tiny_token_classifier):
    with pytest.raises(ValueError, match=r"causal language model.*llmlingua-2"):
        make_compressor(tiny_token_classifier)


def test_unavailable_cuda_is_refused_when_the_configuration_is_read(tmp_path):
    import torch

    from lightmem_core import LightMemory

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    config = {
        "pre_compress": True,
        "pre_compressor": {
            "model_name": "entropy_compress",
            "configs": {"entropy_config": {"device": "cuda"}},
        },
        "memory_dir": str(tmp_path / "mem"),
    }
    with pytest.raises(ConfigError) as info:
        LightMemory(config)
    message = str(info.value)
    assert "$.pre_compressor.configs.entropy_config" in message
    assert "device: 'cuda' cannot be used" in message and "'cpu'" in message
    assert not (tmp_path / "mem").exists()  # refused before anything was written


# -- registration and options ----------------------------------------------------------------


@pytest.fixture
def host():
    return fresh_host(plugin)


def resolve(host, configs, name="entropy_compress"):
    return resolve_backend(host, "$.pre_compressor", "pre_compressor", BackendSpec(name, configs))


def test_plugin_module_imports_no_heavy_library():
    code = (
        "import sys, lightmem_entropy.plugin\n"
        "heavy = {'torch', 'numpy', 'transformers', 'huggingface_hub',\n"
        "         'lightmem_entropy.compressor'} & set(sys.modules)\n"
        "print(sorted(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("name", ["entropy_compress", "entropy-compress", "Entropy_Compress"])
def test_name_is_normalised(host, name):
    registration, _ = resolve(host, None, name)
    assert registration.name == "entropy_compress"


def test_original_options_are_accepted(host, tiny_gpt2):
    configs = {
        "entropy_config": {
            "model_name": tiny_gpt2,
            "device": "cpu",
            "word_level_strategy": "first_token",
            "compress_rate": 0.4,
            "max_length": 256,
        }
    }
    registration, options = resolve(host, configs)
    assert options.entropy_config.compress_rate == 0.4
    backend = registration.factory(options, BackendContext(memory_dir="unused"))
    assert isinstance(backend, PreCompressor)


@pytest.mark.parametrize(
    ("configs", "message"),
    [
        (
            {"entropy_config": {"compress_rate": 0}},
            "entropy_config.compress_rate: must be within (0.0, 1.0], got 0",
        ),
        ({"entropy_config": {"word_level_strategy": "max"}}, "word_level_strategy"),
        ({"entropy_config": {"device": "gpu0"}}, "'cuda', 'cuda:N'"),
        ({"entropy_config": {"batch_size": 0}}, "must be >= 1"),
        ({"entropy_config": {"max_length": "512"}}, "$.pre_compressor.configs.entropy_config"),
        ({"rate": 0.5}, "unknown key(s) rate"),
    ],
)
def test_bad_options_are_refused_with_a_path(host, configs, message):
    with pytest.raises(ConfigError) as info:
        resolve(host, configs)
    assert message in str(info.value)


# -- end to end ------------------------------------------------------------------------------


def test_lightmemory_end_to_end(tmp_path, tiny_gpt2):
    import json
    from importlib import resources

    import lightmem_core.builtin as builtin
    from lightmem_core import LightMemory
    from lightmem_core.testing.reference import ReferencePlugin, reference_config

    data = json.loads(
        resources.files("lightmem_core").joinpath("data/demo_conversation.json").read_text()
    )
    host = fresh_host(builtin, ReferencePlugin(), plugin)
    config = reference_config(
        tmp_path / "mem",
        pre_compress=True,
        pre_compressor={
            "model_name": "entropy_compress",
            "configs": {"entropy_config": {"model_name": tiny_gpt2, "compress_rate": 0.6}},
        },
        topic_segment=True,
        topic_segmenter={"model_name": "embedding"},
        sensory_buffer_tokens=60,
    )
    with LightMemory.from_config(config, host=host) as mem:
        for session in data["sessions"]:
            mem.add_memory([{**m, "time_stamp": session["date"]} for m in session["messages"]])
        mem.flush()
        entries = mem.get_all()
        assert len(entries) == sum(
            m["role"] == "user" for s in data["sessions"] for m in s["messages"]
        )
        compressed = [e for e in entries if e.original_memory is not None]
        assert len(compressed) == len(entries)
        for entry in compressed:
            assert is_subsequence(words(entry.memory), words(entry.original_memory))
        target = compressed[0]
        hits = mem.search(target.memory, limit=3)
        assert target.id in [h.id for h in hits]
