"""The contract installs and works on the oldest Python its pyproject declares.

lightmem-hookspecs is what third-party plugins depend on, so it may promise an older Python
than the core. The test builds a virtual environment with that interpreter, installs the
contract from this checkout with pip (pluggy and attrs come from the package index), and runs
a plugin author's first steps in it: import everything exported, build the value types,
filter with datetimes, declare a hook implementation and call it with a registrar.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HOOKSPECS = ROOT / "hookspecs"

SMOKE = """
import datetime as dt
import lightmem_hookspecs as c

for name in c.__all__:
    getattr(c, name)
entry = c.MemoryEntry(id="e1", memory="Maya's dog is Biscuit", time_stamp=dt.datetime(2024, 3, 2))
stamp = c.to_epoch(entry.time_stamp)
assert c.SearchFilter(time_gte=dt.datetime(2024, 3, 1)).matches("e1", {"time_stamp": stamp})
assert not c.SearchFilter(user_id="u2").matches("e1", {"user_id": "u1"})
hit = c.SearchHit(id="e1", score=1.0, entry=entry, scores={"embedding": 0.9})


@c.hookimpl
def lightmem_register_backends(registrar: c.BackendRegistrar) -> None:
    registrar.reranker("noop", lambda options, context: None)


class Recording(c.BackendRegistrar):
    def __init__(self):
        self.seen = []

    def add(self, kind, name, factory, *, options=None, description=""):
        self.seen.append((kind, name))


recording = Recording()
lightmem_register_backends(recording)
assert recording.seen == [("reranker", "noop")]
print("ok", c.BACKEND_KINDS)
"""


def declared_minimum() -> tuple[int, int]:
    spec = tomllib.loads((HOOKSPECS / "pyproject.toml").read_text())["project"]["requires-python"]
    match = re.fullmatch(r"\s*>=\s*(\d+)\.(\d+)\s*", spec)
    assert match, f"hookspecs requires-python {spec!r} is not of the form '>=X.Y'"
    return int(match.group(1)), int(match.group(2))


def find_interpreter(major: int, minor: int) -> str | None:
    """A working ``pythonX.Y``: on PATH, or a pyenv installation."""
    name = f"python{major}.{minor}"
    candidates = [shutil.which(name)]
    pyenv = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    candidates += sorted(glob.glob(f"{pyenv}/versions/{major}.{minor}.*/bin/{name}"))
    for candidate in candidates:
        if not candidate:
            continue
        probe = subprocess.run(
            [candidate, "-c", "import sys; print(sys.version_info[:2])"],
            capture_output=True,
            text=True,
        )
        if probe.returncode == 0 and probe.stdout.strip() == str((major, minor)):
            return candidate
    return None


def test_the_core_declares_no_older_python_than_it_is_tested_on():
    core = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert declared_minimum() <= tuple(int(x) for x in re.findall(r"\d+", core)[:2])


@pytest.mark.slow
def test_the_contract_installs_and_works_on_its_oldest_python(tmp_path):
    major, minor = declared_minimum()
    if (major, minor) >= sys.version_info[:2]:
        pytest.skip("the declared minimum is the Python running these tests")
    python = find_interpreter(major, minor)
    if python is None:
        pytest.skip(f"no python{major}.{minor} interpreter on this machine")
    venv = tmp_path / "venv"
    subprocess.run([python, "-m", "venv", str(venv)], check=True, timeout=300)
    vpython = str(venv / "bin" / "python")
    install = subprocess.run(
        [vpython, "-m", "pip", "install", "-q", str(HOOKSPECS)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    run = subprocess.run([vpython, "-c", SMOKE], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, (
        f"lightmem-hookspecs fails on Python {major}.{minor}, which it declares:\n{run.stderr}"
    )
    assert run.stdout.startswith("ok")
