"""The huggingface embedder: the bundled model, options, offline loading and its errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import lightmem_huggingface.plugin as hf_plugin
import numpy as np
import pytest
from lightmem_hookspecs import BackendContext, TextEmbedder
from lightmem_huggingface.embedder import HuggingFaceEmbedder
from lightmem_huggingface.models import DEFAULT_MODEL_NAME, bundled_model_dir, read_dimension
from lightmem_huggingface.plugin import HuggingFaceOptions


def run_python(code: str, **env: str) -> str:
    environment = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"} | env
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environment, check=True
    )
    return out.stdout.strip()


# -- the bundled default -----------------------------------------------------------------------


def test_default_is_the_bundled_minilm(minilm):
    assert minilm.model_name == DEFAULT_MODEL_NAME
    assert minilm.dimension == 384
    assert (bundled_model_dir() / "model.safetensors").is_file()
    assert os.path.samefile(minilm.source, bundled_model_dir())


def test_similarity_sanity(minilm):
    fact, question, unrelated = minilm.embed(
        ["my dog is called Rex", "what is my dog's name", "the stock market fell"]
    )
    assert float(fact @ question) > float(fact @ unrelated) + 0.3


def test_question_finds_its_memory(minilm):
    memories = [
        "I work as a data engineer in Lisbon",
        "My sister Ana plays the cello",
        "We adopted a grey cat called Miso last winter",
        "I ran a half marathon in October",
    ]
    vectors = minilm.embed(memories)
    for question, expected in [
        ("what is my job?", 0),
        ("which instrument does Ana play", 1),
        ("what pet do we have", 2),
        ("did I do any races", 3),
    ]:
        scores = vectors @ minilm.embed([question])[0]
        assert int(np.argmax(scores)) == expected, (question, scores)


def test_output_is_float32_and_normalised(minilm):
    vectors = minilm.embed(["one", "two words", "three words here"])
    assert isinstance(vectors, np.ndarray) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_small_batches_equal_one_big_batch(minilm):
    texts = [f"memory number {i}: {'word ' * (i % 5)}about the garden" for i in range(11)]
    big = minilm.embed(texts)
    minilm.batch_size = 2
    try:
        small = minilm.embed(texts)
    finally:
        minilm.batch_size = None
    singles = np.vstack([minilm.embed([t]) for t in texts])
    assert np.allclose(big, small, atol=1e-5)
    assert np.allclose(big, singles, atol=1e-5)


def test_a_large_call_is_encoded_in_batches_of_nearly_equal_token_length(minilm):
    texts = [("word " * ((i * 7) % 40)) + f"memory {i}" for i in range(40)]
    model = minilm._load()
    calls: list[list[str]] = []
    encode = model.encode

    def recording(batch, **kwargs):
        calls.append(list(batch))
        return encode(batch, **kwargs)

    model.encode = recording
    try:
        vectors = minilm.embed(texts)
    finally:
        del model.encode
    assert minilm.batch_size is None and [len(c) for c in calls] == [16, 16, 8]  # CPU default
    lengths = [[len(model.tokenizer(t)["input_ids"]) for t in call] for call in calls]
    flat = [n for call in lengths for n in call]
    assert flat == sorted(flat, reverse=True)  # longest first, neighbours together
    singles = np.vstack([minilm.embed([t]) for t in texts])
    assert np.allclose(vectors, singles, atol=1e-5)  # every row where its text was


def test_non_string_text_is_refused(minilm):
    with pytest.raises(TypeError, match=r"texts\[1\] is NoneType, expected str"):
        minilm.embed(["fine", None])


def test_nothing_loads_until_the_first_embed():
    code = (
        "import sys\n"
        "from lightmem_huggingface.embedder import HuggingFaceEmbedder\n"
        "e = HuggingFaceEmbedder()\n"
        "from lightmem_hookspecs import TextEmbedder\n"
        "assert isinstance(e, TextEmbedder)\n"
        "print(e.model_name, e.dimension, e.embed([]).shape,\n"
        "      sorted({'torch', 'sentence_transformers', 'transformers'} & set(sys.modules)))\n"
    )
    assert run_python(code) == f"{DEFAULT_MODEL_NAME} 384 (0, 384) []"


def test_offline_mode_is_set_unless_the_user_chose(tmp_path):
    code = (
        "import os\n"
        "from lightmem_huggingface.embedder import HuggingFaceEmbedder\n"
        "HuggingFaceEmbedder()\n"
        "print(os.environ['HF_HUB_OFFLINE'])\n"
    )
    assert run_python(code) == "1"
    assert run_python(code, HF_HUB_OFFLINE="0") == "0"


# -- model lookup and its errors -----------------------------------------------------------------


@pytest.mark.parametrize("alias", ["all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"])
def test_original_default_names_mean_the_bundled_model(alias):
    embedder = HuggingFaceEmbedder(alias)
    assert embedder.model_name == DEFAULT_MODEL_NAME
    assert os.path.samefile(embedder.source, bundled_model_dir())


def test_bundled_folder_given_by_path_keeps_the_default_name():
    assert HuggingFaceEmbedder(str(bundled_model_dir())).model_name == DEFAULT_MODEL_NAME


@pytest.mark.parametrize("missing", ["/nonexistent/models/minilm", "./models/minilm", "~/no/such"])
def test_missing_local_folder(missing):
    with pytest.raises(FileNotFoundError) as info:
        HuggingFaceEmbedder(missing)
    message = str(info.value)
    assert repr(missing) in message
    assert "does not exist" in message
    assert "folder of a sentence-transformers model" in message


def test_a_file_is_not_a_model_folder(tmp_path):
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"")
    with pytest.raises(ValueError, match="is a file; give the folder"):
        HuggingFaceEmbedder(str(weights))


def test_hub_name_not_cached_cannot_download(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError) as info:
        HuggingFaceEmbedder(
            "sentence-transformers/all-mpnet-base-v2",
            model_kwargs={"cache_folder": str(tmp_path)},
        )
    message = str(info.value)
    assert "'sentence-transformers/all-mpnet-base-v2'" in message
    assert "cannot be downloaded" in message
    assert "set `model` to that folder" in message


def test_hub_name_already_in_the_cache_is_used_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "models--acme--tiny-minilm"
    snapshot = repo / "snapshots" / revision
    for source in bundled_model_dir().rglob("*"):
        if source.is_file():
            target = snapshot / source.relative_to(bundled_model_dir())
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(source)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    embedder = HuggingFaceEmbedder("acme/tiny-minilm", model_kwargs={"cache_folder": str(tmp_path)})
    assert embedder.model_name == "acme/tiny-minilm"
    assert os.path.samefile(embedder.source, snapshot)
    assert embedder.dimension == 384


def test_local_folder_model_name_is_the_path(tmp_path, minilm):
    folder = tmp_path / "my-minilm"
    for source in bundled_model_dir().rglob("*"):
        target = folder / source.relative_to(bundled_model_dir())
        if source.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(source)
    embedder = HuggingFaceEmbedder(str(folder), device="cpu")
    assert embedder.model_name == str(folder)
    assert embedder.dimension == 384
    text = ["a copy of the same model gives the same vectors"]
    assert np.allclose(embedder.embed(text), minilm.embed(text), atol=1e-5)


# -- embedding_dims and model_kwargs -------------------------------------------------------------


def test_embedding_dims_matching_is_fine():
    assert HuggingFaceEmbedder(embedding_dims=384).dimension == 384


def test_embedding_dims_mismatch_is_refused_before_loading():
    with pytest.raises(ValueError) as info:
        HuggingFaceEmbedder(embedding_dims=768)
    message = str(info.value)
    assert message.startswith("embedding_dims: ")
    assert "says 768" in message and "produces 384-dimensional" in message
    assert "Set embedding_dims to 384" in message


def test_embedding_dims_mismatch_is_refused_at_load_when_undeclared(tmp_path, minilm):
    # A folder whose size cannot be read from its config files: checked when the model loads.
    folder = tmp_path / "opaque"
    folder.mkdir()
    for source in bundled_model_dir().rglob("*"):
        if source.is_file() and source.name != "modules.json":
            target = folder / source.relative_to(bundled_model_dir())
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(source)
    (folder / "modules.json").write_text(
        json.dumps(
            [
                {
                    "idx": 0,
                    "name": "0",
                    "path": "",
                    "type": "sentence_transformers.models.Transformer",
                },
                {
                    "idx": 1,
                    "name": "1",
                    "path": "1_Pooling",
                    "type": "sentence_transformers.models.Pooling",
                },
                {"idx": 2, "name": "2", "path": "2_Normalize", "type": "some.custom.Module"},
            ]
        )
    )
    assert read_dimension(folder) is None
    embedder = HuggingFaceEmbedder(str(folder), embedding_dims=100, device="cpu")
    assert embedder.dimension == 100  # trusted until the model loads...
    with pytest.raises((ValueError, RuntimeError)):
        embedder.embed(["hello"])  # ...then refused (or the custom module fails to load)


def test_truncate_dim_through_model_kwargs():
    embedder = HuggingFaceEmbedder(
        embedding_dims=128, model_kwargs={"truncate_dim": 128, "device": "cpu"}
    )
    vectors = embedder.embed(["short vectors", "still normalised"])
    assert vectors.shape == (2, 128)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_unknown_model_kwargs_are_reported_at_load():
    embedder = HuggingFaceEmbedder(model_kwargs={"no_such_option": 1})
    with pytest.raises(ValueError, match=r"model_kwargs: .*no_such_option"):
        embedder.embed(["hello"])


def test_device_conflict():
    with pytest.raises(ValueError, match=r"device: 'cpu' conflicts with model_kwargs\.device"):
        HuggingFaceEmbedder(device="cpu", model_kwargs={"device": "cuda"})
    assert HuggingFaceEmbedder(device="cpu", model_kwargs={"device": "cpu"}).model_kwargs == {
        "device": "cpu"
    }


def test_read_dimension_layouts(tmp_path):
    def folder(name, modules, configs):
        root = tmp_path / name
        root.mkdir()
        (root / "modules.json").write_text(json.dumps(modules))
        for path, config in configs.items():
            (root / path).mkdir()
            (root / path / "config.json").write_text(json.dumps(config))
        return root

    t = {"idx": 0, "path": "", "type": "sentence_transformers.models.Transformer"}
    p = {"idx": 1, "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}
    d = {"idx": 2, "path": "2_Dense", "type": "sentence_transformers.models.Dense"}
    new_style = folder(
        "new", [t, p], {"1_Pooling": {"embedding_dimension": 768, "pooling_mode": "cls"}}
    )
    two_modes = folder(
        "two", [t, p], {"1_Pooling": {"embedding_dimension": 256, "pooling_mode": ["mean", "max"]}}
    )
    legacy = folder(
        "legacy",
        [t, p],
        {
            "1_Pooling": {
                "word_embedding_dimension": 384,
                "pooling_mode_mean_tokens": True,
                "pooling_mode_max_tokens": True,
            }
        },
    )
    dense = folder(
        "dense",
        [t, p, d],
        {
            "1_Pooling": {"embedding_dimension": 768, "pooling_mode": "mean"},
            "2_Dense": {"in_features": 768, "out_features": 512},
        },
    )
    assert read_dimension(new_style) == 768
    assert read_dimension(two_modes) == 512
    assert read_dimension(legacy) == 768
    assert read_dimension(dense) == 512
    assert read_dimension(bundled_model_dir()) == 384
    assert read_dimension(tmp_path) is None  # no modules.json


# -- the plugin and its options through the core -------------------------------------------------


@pytest.fixture
def host(lightmem_host):
    lightmem_host.register(hf_plugin, "huggingface")
    return lightmem_host


def resolve(host, configs):
    from lightmem_core.config import BackendSpec, resolve_backend

    return resolve_backend(
        host, "$.text_embedder", "text_embedder", BackendSpec("huggingface", configs)
    )


def test_original_options_are_accepted(host):
    registration, options = resolve(
        host,
        {"model": "all-MiniLM-L6-v2", "embedding_dims": 384, "model_kwargs": {"device": "cpu"}},
    )
    assert options == HuggingFaceOptions(
        model="all-MiniLM-L6-v2", embedding_dims=384, model_kwargs={"device": "cpu"}
    )
    embedder = registration.factory(options, BackendContext(memory_dir="unused"))
    assert isinstance(embedder, TextEmbedder)
    assert embedder.model_name == DEFAULT_MODEL_NAME


@pytest.mark.parametrize(
    ("configs", "message"),
    [
        ({"embedding_dims": 0}, "$.text_embedder.configs.embedding_dims: must be >= 1"),
        ({"batch_size": 0}, "$.text_embedder.configs.batch_size: must be >= 1"),
        ({"embedding_dims": "384"}, "$.text_embedder.configs.embedding_dims"),
        ({"huggingface_base_url": "http://tei:8080"}, "not supported by lightmem-huggingface"),
        ({"normalize": False}, "unknown key(s) normalize"),
    ],
)
def test_bad_options_are_refused_with_a_path(host, configs, message):
    from lightmem_core.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        resolve(host, configs)
    assert message in str(info.value)


def test_options_refuse_a_missing_folder_before_any_backend_is_built():
    with pytest.raises(ValueError, match=r"/no/such/folder.*does not exist"):
        HuggingFaceOptions(model="/no/such/folder")


def test_plugin_module_imports_no_heavy_library():
    code = (
        "import sys, lightmem_huggingface.plugin\n"
        "heavy = {'torch', 'numpy', 'sentence_transformers', 'transformers', 'huggingface_hub',\n"
        "         'lightmem_huggingface.embedder'} & set(sys.modules)\n"
        "print(sorted(heavy))\n"
    )
    assert run_python(code) == "[]"


def test_in_lightmemory(tmp_path, host):
    import lightmem_core.builtin as builtin
    from lightmem_core import LightMemory
    from lightmem_core.testing.reference import ReferencePlugin, reference_config

    host.register(builtin, "lightmem-core")
    host.register(ReferencePlugin(), "reference")
    config = reference_config(
        tmp_path / "mem",
        text_embedder={"model_name": "huggingface", "configs": {"device": "cpu"}},
        retrieve_strategy="embedding",
    )
    messages = [
        {"role": "user", "content": "My dog is called Biscuit", "time_stamp": "2024-03-02"},
        {
            "role": "user",
            "content": "I work as a data engineer in Lisbon",
            "time_stamp": "2024-03-09",
        },
        {"role": "user", "content": "I ran a half marathon in October", "time_stamp": "2024-03-10"},
    ]
    with LightMemory.from_config(config, host=host) as mem:
        mem.add_memory(messages, force_segment=True, force_extract=True)
        assert mem.retrieve("what is my pet's name", limit=1)[0].endswith("Biscuit")
        assert mem.retrieve("what do I do for a living", limit=1)[0].endswith("Lisbon")
        assert mem.embedder.model_name == DEFAULT_MODEL_NAME
