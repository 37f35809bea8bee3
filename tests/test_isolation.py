"""The ``isolated`` marker: a test whose process dies fails with its name and signal, and the
run goes on to its summary. Runs a real child pytest on a small test file."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

TESTS = """
import os, signal, time
import pytest

@pytest.fixture(scope="module")
def shared():
    return {"ok": True}

def test_before(shared):
    assert shared["ok"]

@pytest.mark.isolated
def test_dies_of_an_illegal_instruction(shared):
    os.kill(os.getpid(), signal.SIGILL)

@pytest.mark.isolated
def test_segfaults_in_a_fixture(crash_in_setup):
    pass

@pytest.fixture
def crash_in_setup():
    os.kill(os.getpid(), signal.SIGSEGV)

@pytest.mark.isolated
def test_passes_in_the_child(tmp_path, shared):
    assert os.environ.get("PYTHONFAULTHANDLER") == "1"
    assert shared["ok"]

@pytest.mark.isolated
def test_fails_in_the_child():
    assert 1 + 1 == 3

@pytest.mark.isolated
@pytest.mark.skipif(True, reason="skipped in the child")
def test_skipped_in_the_child():
    pass

@pytest.mark.isolated(timeout=2)
def test_hangs():
    time.sleep(60)

def test_after(shared):
    assert shared["ok"]
"""


def test_a_dying_isolated_test_is_a_failure_and_the_run_reaches_its_summary(tmp_path):
    (tmp_path / "test_native.py").write_text(textwrap.dedent(TESTS))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-p",
            "lightmem_core.testing.isolation",
            "-rA",
            "test_native.py",
        ],
        cwd=tmp_path,
        env=dict(os.environ, COLUMNS="200"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = done.stdout
    assert done.returncode == 1, out + done.stderr
    lines = out.splitlines()
    assert "4 failed, 3 passed, 1 skipped" in lines[-1]
    assert any(
        line.startswith("FAILED test_native.py::test_dies_of_an_illegal_instruction")
        and "SIGILL" in line
        for line in lines
    )
    assert "signal SIGILL (Illegal instruction)" in out
    assert "signal SIGSEGV (Segmentation fault)" in out
    assert "isolated process ran longer than 2 s and was killed" in out
    assert "assert (1 + 1) == 3" in out
    assert "PASSED test_native.py::test_after" in out
    assert "PASSED test_native.py::test_passes_in_the_child" in out
    assert "skipped in the child" in out


def test_other_projects_pytest_runs_load_neither_the_server_nor_the_isolation_runner(tmp_path):
    """lightmem-core's pytest11 entry point is loaded by every pytest run where it is installed:
    it brings the light ``lightmem_host`` fixture only; the loopback server and the ``isolated``
    marker come when a project asks for them."""
    (tmp_path / "test_other.py").write_text(
        textwrap.dedent(
            """
            import sys

            def test_nothing_heavy_loaded(lightmem_host, pytestconfig):
                loaded = set(sys.modules)
                assert "lightmem_core.testing.openai_server" not in loaded
                assert "lightmem_core.testing.isolation" not in loaded
                assert not pytestconfig.pluginmanager.has_plugin("lightmem_core.testing.loopback")
                assert lightmem_host.registry.names("memory_manager") == []
            """
        )
    )
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "test_other.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
