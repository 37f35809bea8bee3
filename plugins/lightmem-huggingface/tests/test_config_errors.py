"""Configuration mistakes found on a fresh machine: a model folder without the bundle package,
and a CUDA device on a CPU-only torch (caught when the configuration is read, naming the key)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from lightmem_huggingface.embedder import HuggingFaceEmbedder
from lightmem_huggingface.models import BUNDLE_PACKAGE, bundled_model_dir

from lightmem_core import LightMemory
from lightmem_core.errors import ConfigError


def _copy_of_the_model(target: Path) -> Path:
    """The bundled MiniLM folder, rebuilt elsewhere (its weights hard-linked or copied)."""
    source = bundled_model_dir()
    for path in source.rglob("*"):
        dest = target / path.relative_to(source)
        if path.is_dir():
            dest.mkdir(parents=True, exist_ok=True)
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, dest)
        except OSError:
            dest.write_bytes(path.read_bytes())
    return target


def test_a_model_folder_works_when_the_bundle_package_is_not_installed(
    tmp_path, monkeypatch, minilm
):
    folder = _copy_of_the_model(tmp_path / "all-MiniLM-L6-v2")
    monkeypatch.setitem(sys.modules, BUNDLE_PACKAGE, None)  # import machinery: "not installed"
    with pytest.raises(FileNotFoundError, match="not installed"):
        bundled_model_dir()
    embedder = HuggingFaceEmbedder(str(folder), device="cpu")
    assert embedder.model_name == str(folder)
    assert embedder.dimension == 384
    vectors = embedder.embed(["my dog is called Rex"])
    assert vectors.shape == (1, 384)
    assert abs(float((vectors[0] * minilm.embed(["my dog is called Rex"])[0]).sum()) - 1) < 1e-4


def _torch_has_cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


@pytest.mark.parametrize(
    ("configs", "key"),
    [
        ({"device": "cuda"}, "text_embedder.configs.device"),
        ({"device": "cuda:0"}, "text_embedder.configs.device"),
        ({"model_kwargs": {"device": "cuda"}}, "text_embedder.configs.model_kwargs.device"),
    ],
)
def test_cuda_on_a_cpu_torch_fails_when_the_configuration_is_read(tmp_path, configs, key):
    if _torch_has_cuda():
        pytest.skip("this torch can use CUDA here")
    config = {
        "text_embedder": {"model_name": "huggingface", "configs": configs},
        "memory_dir": str(tmp_path / "mem"),
    }
    with pytest.raises(ConfigError) as caught:
        LightMemory.from_config(config)
    message = str(caught.value)
    assert f"{key}: 'cuda" in message
    assert "is a CPU build (no CUDA support)" in message
    assert "'cpu'" in message
    assert not (tmp_path / "mem").exists()  # refused before anything was written


def test_config_check_reports_cuda_on_a_cpu_torch(tmp_path):
    if _torch_has_cuda():
        pytest.skip("this torch can use CUDA here")
    path = tmp_path / "config.yaml"
    path.write_text("text_embedder:\n  model_name: huggingface\n  configs:\n    device: cuda\n")
    done = subprocess.run(
        [sys.executable, "-m", "lightmem_core.cli", "config", "check", str(path)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "text_embedder.configs.device: 'cuda' cannot be used" in done.stderr
    assert "CPU build" in done.stderr


def test_validating_a_cpu_configuration_does_not_import_torch(tmp_path):
    code = (
        "import sys\n"
        "from lightmem_core.config import resolve\n"
        "from lightmem_core.plugins import PluginHost\n"
        "resolve({'text_embedder': {'model_name': 'huggingface', 'configs': "
        "{'device': 'cpu', 'model_kwargs': {'device': 'cpu'}}}}, PluginHost())\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_config_check_reports_a_model_folder_that_does_not_exist(tmp_path):
    missing = tmp_path / "models" / "all-MiniLM-L6-v2"
    path = tmp_path / "config.yaml"
    path.write_text(
        "text_embedder:\n  model_name: huggingface\n"
        f"  configs:\n    model: {missing}\n    batch_size: 0\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "lightmem_core.cli", "config", "check", str(path)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"$.text_embedder.configs.model: the model folder '{missing}' does not exist" in (
        done.stderr
    )
    assert "$.text_embedder.configs.batch_size: must be >= 1, got 0" in done.stderr  # both
