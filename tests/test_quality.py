"""Lint, format and type checks run with the tests, so `pytest` (and CI) fails on any of them.

ruff covers the whole repository; mypy covers the contract and the core (the configuration is
in pyproject.toml). The tools come with the core's ``test`` extra.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(module: str, *args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed (pip install -e .[test])")
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_ruff_check():
    result = run("ruff", "check", "--no-cache", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format():
    result = run("ruff", "format", "--check", "--no-cache", ".")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_mypy_on_the_contract_and_the_core():
    result = run("mypy", "hookspecs/lightmem_hookspecs", "lightmem_core", timeout=1200)
    assert result.returncode == 0, result.stdout + result.stderr
