"""Where a result came from: the commit of the code and a hash of the configuration."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from ..config import LightMemConfig

_SECRET = ("key", "secret", "token", "password", "passwd", "credential")


def _redact(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {
            k: ("<redacted>" if any(s in str(k).lower() for s in _SECRET) and v else _redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact(v) for v in value]
    return value


def config_dict(config: LightMemConfig) -> dict[str, Any]:
    data = attrs.asdict(config)
    for key in ("memory_dir", "history_db_path"):
        data.pop(key, None)
    return _redact(data)


def hash_config(config: LightMemConfig) -> str:
    """A short hash of the configuration (secrets and the store's location left out)."""
    text = json.dumps(config_dict(config), sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def git_commit(path: str | Path | None = None) -> dict[str, Any] | None:
    """The commit (and whether the tree has changes) of the repository holding ``path``."""
    where = Path(path or Path(__file__).resolve().parent)
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(dirty)}
