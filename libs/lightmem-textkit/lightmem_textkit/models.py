"""Local Hugging Face model folders: find one, read its config.json, pick the torch device.

Nothing here downloads: a hub id is only looked up in the local Hugging Face cache. torch is
imported only inside :func:`resolve_device` and :func:`resolve_dtype`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import attrs
from lightmem_hookspecs.options import OptionError

#: ``name`` or ``owner/name``, the forms a Hugging Face hub id takes.
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
#: The device names a ``device`` option accepts.
DEVICE = re.compile(r"^(cpu|auto|mps|cuda(:\d+)?)$")

#: Architecture suffixes of models that predict the next token (decoders).
CAUSAL_LM_SUFFIXES = ("ForCausalLM", "LMHeadModel")


@attrs.frozen
class ModelInfo:
    """What ``config.json`` says about a model folder."""

    path: str
    model_type: str
    architectures: tuple[str, ...]
    max_positions: int
    num_labels: int = 2
    num_layers: int = 0

    @property
    def causal_lm(self) -> bool:
        """Whether the model predicts the next token (GPT-2 and the like)."""
        return any(a.endswith(CAUSAL_LM_SUFFIXES) for a in self.architectures)

    @property
    def token_classifier(self) -> bool:
        return any(a.endswith("ForTokenClassification") for a in self.architectures)

    def describe(self) -> str:
        """The architectures, or the model type when config.json names none (for messages)."""
        return ", ".join(self.architectures) or f"model_type {self.model_type!r}"


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
    if HUB_ID.match(name):
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


def read_model_info(folder: Path, where: str, *, default_positions: int = 512) -> ModelInfo:
    """Read ``folder/config.json``; ``default_positions`` when it states no position limit."""
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
    if not isinstance(config, dict):
        raise ValueError(f"{where}: {config_file} holds no JSON object")
    labels = config.get("id2label") or {}
    text_config = config.get("text_config") or {}
    return ModelInfo(
        path=str(folder),
        model_type=str(config.get("model_type") or ""),
        architectures=tuple(config.get("architectures") or ()),
        max_positions=int(
            config.get("max_position_embeddings")
            or config.get("n_positions")
            or config.get("n_ctx")
            or text_config.get("max_position_embeddings")
            or default_positions
        ),
        num_labels=int(config.get("num_labels") or len(labels) or 2),
        num_layers=int(config.get("num_hidden_layers") or config.get("n_layer") or 0),
    )


def cuda_unusable(device: object) -> str | None:
    """Why the torch device ``device`` cannot run here, or ``None``. Imports torch only when
    ``device`` names CUDA, so validating the default (CPU) never pays for the import."""
    if not isinstance(device, str) or not device.strip().lower().startswith("cuda"):
        return None
    import torch

    if torch.cuda.is_available():
        return None
    if torch.version.cuda is None:
        return f"the installed torch {torch.__version__} is a CPU build (no CUDA support)"
    return f"the installed torch {torch.__version__} has CUDA {torch.version.cuda} but sees no GPU"


def refuse_unusable_cuda(attribute: Any, device: object, within: str = "") -> None:
    """Raise :class:`~lightmem_hookspecs.options.OptionError` when ``device`` (the value of the
    option ``attribute``, or of ``within`` inside it) names CUDA and this torch cannot use it."""
    why = cuda_unusable(device)
    if why:
        raise OptionError.at(
            attribute,
            f"{device!r} cannot be used: {why}",
            "set it to 'cpu' (or leave it out), or install a CUDA build of torch on a machine "
            "with a GPU",
            within=within,
        )


def check_device(_inst: Any, attribute: Any, value: str) -> None:
    """An attrs validator for a ``device`` option: cpu, cuda, cuda:N, mps or auto, and a CUDA
    device only where this torch can use one (refused when the configuration is read, not at
    the first call)."""
    if not DEVICE.match(value):
        raise OptionError.at(
            attribute, f"expected 'cpu', 'cuda', 'cuda:N', 'mps' or 'auto', got {value!r}"
        )
    refuse_unusable_cuda(attribute, value)


def resolve_device(device: str, where: str = "device") -> Any:
    """The ``torch.device`` a device option names; ``auto`` is CUDA when available."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(
            f"{where} {device!r}: CUDA is not available to this torch build; use 'cpu'"
        )
    if device == "mps" and not torch.backends.mps.is_available():
        raise RuntimeError(f"{where} 'mps': MPS is not available here; use 'cpu'")
    return torch.device(device)


def resolve_dtype(name: str | None, device: Any) -> Any:
    """The torch dtype: float32 by default, float16 for ``auto`` on CUDA, else as named."""
    import torch

    if name in (None, "auto"):
        return torch.float16 if name == "auto" and device.type == "cuda" else torch.float32
    return getattr(torch, name)


def looks_like_path(model: str) -> bool:
    """A model value that can only mean a folder (hub ids are ``name`` or ``owner/name``)."""
    import os

    return (
        os.path.isabs(model)
        or model.startswith((".", "~"))
        or "\\" in model
        or model.count("/") > 1
        or model.endswith("/")
    )


def check_model_folder(_inst: Any, attribute: Any, value: str | None) -> None:
    """An attrs validator for a model option: a value that names a folder (a path, not a hub
    id or an alias) must be an existing folder. Refused when the configuration is read
    (``lightmem config check`` reports it), not at the first call; hub ids are left to the
    backend, which looks them up in the local cache."""
    if value is None or not looks_like_path(value):
        return
    path = Path(value).expanduser()
    if path.is_dir():
        return
    what = "is a file" if path.exists() else "does not exist"
    raise OptionError.at(
        attribute,
        f"the model folder {value!r} {what}",
        f"point {attribute.name} at a folder holding config.json, the weights and the "
        "tokenizer files",
    )
