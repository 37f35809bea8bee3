"""Model folders: found on disk or in the local cache only, config.json read, devices checked."""

from __future__ import annotations

import json

import attrs
import pytest
from lightmem_textkit.models import (
    ModelInfo,
    check_device,
    read_model_info,
    resolve_device,
    resolve_dtype,
    resolve_model_folder,
)

WHERE = "pre_compressor.configs.model_name"


def test_a_folder_is_used_as_it_is(tmp_path):
    assert resolve_model_folder(str(tmp_path), WHERE) == tmp_path.resolve()


def test_a_missing_folder_names_the_option(tmp_path):
    with pytest.raises(FileNotFoundError, match=rf"{WHERE}: the model folder .* does not exist"):
        resolve_model_folder(str(tmp_path / "nowhere"), WHERE)


def test_a_file_is_not_a_model_folder(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="is a file"):
        resolve_model_folder(str(tmp_path / "weights.bin"), WHERE)


@pytest.mark.parametrize("hub_id", ["gpt2", "microsoft/llmlingua-2-bert-base-multilingual-cased"])
def test_a_hub_id_is_only_looked_up_in_the_local_cache(hub_id, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=rf"never downloads.*hf download {hub_id}"):
        resolve_model_folder(hub_id, WHERE)


def test_config_json_is_read(tmp_path):
    (tmp_path / "config.json").write_text(
        json.dumps(
            {
                "model_type": "bert",
                "architectures": ["BertForTokenClassification"],
                "id2label": {"0": "drop", "1": "keep"},
                "max_position_embeddings": 512,
                "num_hidden_layers": 4,
            }
        )
    )
    info = read_model_info(tmp_path, WHERE)
    assert info == ModelInfo(
        path=str(tmp_path),
        model_type="bert",
        architectures=("BertForTokenClassification",),
        max_positions=512,
        num_labels=2,
        num_layers=4,
    )
    assert info.token_classifier and not info.causal_lm


def test_a_gpt2_config_gives_its_context_and_layers(tmp_path):
    config = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_ctx": 256}
    config["n_layer"] = 2
    (tmp_path / "config.json").write_text(json.dumps(config))
    info = read_model_info(tmp_path, WHERE, default_positions=1024)
    assert (info.max_positions, info.num_layers, info.causal_lm) == (256, 2, True)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    info = read_model_info(tmp_path, WHERE, default_positions=1024)
    assert info.max_positions == 1024
    assert info.describe() == "model_type 'gpt2'"


def test_a_folder_without_a_readable_config_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no config\.json"):
        read_model_info(tmp_path, WHERE)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match=rf"{WHERE}: cannot read"):
        read_model_info(tmp_path, WHERE)
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="no JSON object"):
        read_model_info(tmp_path, WHERE)


@attrs.frozen
class _Options:
    device: str = attrs.field(default="cpu", validator=check_device)


@pytest.mark.parametrize("device", ["cpu", "auto", "mps"])
def test_device_names_are_accepted(device):
    assert _Options(device).device == device


@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_a_cuda_device_is_accepted_only_where_torch_can_use_it(device):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        assert _Options(device).device == device
        return
    with pytest.raises(
        ValueError, match=rf"device: '{device}' cannot be used: the installed torch"
    ):
        _Options(device)


@pytest.mark.parametrize("device", ["gpu", "cuda:", "CPU", ""])
def test_other_device_names_are_refused(device):
    with pytest.raises(ValueError, match="device: expected 'cpu', 'cuda', 'cuda:N'"):
        _Options(device)


def test_device_and_dtype_resolve_with_torch():
    torch = pytest.importorskip("torch")
    cpu = resolve_device("cpu")
    assert cpu.type == "cpu"
    assert resolve_dtype(None, cpu) is torch.float32
    assert resolve_dtype("auto", cpu) is torch.float32
    assert resolve_dtype("bfloat16", cpu) is torch.bfloat16
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="device_map 'cuda:0': CUDA is not available"):
            resolve_device("cuda:0", "device_map")
