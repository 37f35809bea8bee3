"""Finding and checking the causal LM folder (stdlib only), and torch device / dtype resolution."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import attrs

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_CAUSAL_SUFFIXES = ("ForCausalLM", "LMHeadModel")


@attrs.frozen
class ModelInfo:
    """What ``config.json`` says about a model folder."""

    path: str
    model_type: str
    architectures: tuple[str, ...]
    max_positions: int


def resolve_model_folder(name: str, where: str) -> Path:
    """The local folder of ``name``: a folder path, or a hub id already in the local HF cache.

    Nothing is ever downloaded. ``where`` names the option in error messages.
    """
    path = Path(name).expanduser()
    if path.is_dir():
        return path.resolve()
    if path.exists():
        raise FileNotFoundError(
            f"{where}: {name!r} is a file; it must be a model folder holding config.json, the "
            "weights and the tokenizer files"
        )
    if _HUB_ID.match(name):
        try:
            from huggingface_hub import snapshot_download

            return Path(snapshot_download(name, local_files_only=True))
        except Exception:
            pass
        raise FileNotFoundError(
            f"{where}: {name!r} is not a local folder and is not in the local Hugging Face "
            "cache. LightMem never downloads models: on a connected machine run "
            f"`hf download {name} --local-dir DIR`, copy DIR here and set {where} to DIR"
        )
    raise FileNotFoundError(
        f"{where}: the model folder {str(path)!r} does not exist; point {where} at a folder "
        "holding config.json, the weights and the tokenizer files"
    )


def read_model_info(folder: Path, where: str) -> ModelInfo:
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(
            f"{where}: {str(folder)!r} has no config.json, so it is not a Hugging Face model "
            "folder; save the model with save_pretrained() or download it with `hf download`"
        )
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{where}: cannot read {config_file}: {exc}") from exc
    return ModelInfo(
        path=str(folder),
        model_type=str(config.get("model_type") or ""),
        architectures=tuple(config.get("architectures") or ()),
        max_positions=int(
            config.get("n_positions")
            or config.get("max_position_embeddings")
            or config.get("n_ctx")
            or 1024
        ),
    )


def check_causal_lm(info: ModelInfo, where: str) -> None:
    """Refuse a folder whose model does not predict the next token."""
    if any(a.endswith(_CAUSAL_SUFFIXES) for a in info.architectures):
        return
    found = ", ".join(info.architectures) or f"model_type {info.model_type!r}"
    hint = ""
    if any(a.endswith("ForTokenClassification") for a in info.architectures):
        hint = " A token classifier is an LLMLingua-2 checkpoint: use pre_compressor `llmlingua-2`."
    raise ValueError(
        f"{where}: {info.path!r} holds {found}, but entropy_compress needs a causal language "
        f"model (architectures ending in ForCausalLM or LMHeadModel, e.g. GPT-2).{hint}"
    )


def resolve_device(device: str) -> Any:
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(
            f"device {device!r}: CUDA is not available to this torch build; use 'cpu'"
        )
    if device == "mps" and not torch.backends.mps.is_available():
        raise RuntimeError("device 'mps': MPS is not available here; use 'cpu'")
    return torch.device(device)


def resolve_dtype(name: str | None, device: Any) -> Any:
    import torch

    if name in (None, "auto"):
        return torch.float16 if name == "auto" and device.type == "cuda" else torch.float32
    return getattr(torch, name)
