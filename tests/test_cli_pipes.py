"""`lightmem … | head`: a reader that leaves early ends the command quietly, no traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest


def run_into_a_closed_pipe(*args: str) -> tuple[int, str]:
    """Run the CLI with its stdout a pipe whose reader is already gone (as after `head -1`)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "lightmem_core.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # before the command has written anything
    stderr = process.stderr.read()
    return process.wait(timeout=120), stderr


@pytest.mark.parametrize("args", [("plugins", "--json"), ("plugins",), ("stats",)])
def test_a_closed_pipe_ends_the_command_without_a_traceback(tmp_path, args):
    if args[0] == "stats":  # opens a memory on the embedded default
        for module in ("lightmem_huggingface", "lightmem_qdrant", "lightmem_sqlite_index"):
            pytest.importorskip(module, reason="the embedded default plugins are not installed")
        args = (*args, "--memory-dir", str(tmp_path / "mem"))
    code, stderr = run_into_a_closed_pipe(*args)
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr
    assert code == 141  # 128 + SIGPIPE, what a shell reports for `yes | head -1`


def test_the_same_commands_still_print_into_an_open_pipe(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "lightmem_core.cli", "plugins", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.lstrip().startswith("{")
