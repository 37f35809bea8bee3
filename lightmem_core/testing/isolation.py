"""``@pytest.mark.isolated``: run a test in a child pytest process, so its death is a failure.

A test that runs native code (a compiled model runtime, a GPU library) can kill the process it
runs in: an illegal instruction, a segmentation fault, an out-of-memory kill. In-process, that
ends the whole pytest run without a summary. Marked ``isolated``, the test runs in a child
``python -m pytest <its node id>``; the child's reports come back to this run, and a child that
dies is reported as this test's failure with the signal's name (``SIGILL``, ``SIGSEGV``) and the
tail of its output, and the run goes on. ``@pytest.mark.isolated(timeout=S)`` also fails a test
whose child runs longer than S seconds (default 900) and kills it.

The child sets up the test's fixtures itself (fixtures of any scope are set up again for each
isolated test), so keep isolated tests few and self-contained. An opt-in pytest plugin: a
test suite enables it in its top-level ``conftest.py`` with
``pytest_plugins = ["lightmem_core.testing.isolation"]`` (or with
``-p lightmem_core.testing.isolation``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from _pytest.reports import TestReport

DEFAULT_TIMEOUT = 900.0
_CHILD_OPTION = "--lightmem-isolated-report"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("lightmem")
    group.addoption(
        _CHILD_OPTION,
        default=None,
        help="internal: this pytest runs one isolated test and writes its reports to this file",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "isolated(timeout=900): run the test in a child pytest process; a crash (signal) or a "
        "timeout is reported as its failure and the run goes on",
    )


def _death(returncode: int) -> str:
    if returncode >= 0:
        return f"its isolated process exited with status {returncode}"
    number = -returncode
    try:
        name = signal.Signals(number).name
    except ValueError:
        name = f"signal {number}"
    text = signal.strsignal(number) or "unknown"
    return f"killed by signal {name} ({text}) in its isolated process"


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
    config = item.config
    marker = item.get_closest_marker("isolated")
    if marker is None or config.getoption(_CHILD_OPTION):
        return None
    timeout = float(marker.kwargs.get("timeout", DEFAULT_TIMEOUT))
    item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    reports = _run_in_child(item, timeout)
    # Fixtures this process set up for earlier tests and that the next test does not share
    # end here, as after any test (the child set up and tore down its own).
    try:
        item.session._setupstate.teardown_exact(nextitem)
    except Exception as exc:
        reports.append(_report(item, "teardown", "failed", f"{type(exc).__name__}: {exc}"))
    for report in reports:
        item.ihook.pytest_runtest_logreport(report=report)
    item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True


def _run_in_child(item: pytest.Item, timeout: float) -> list[TestReport]:
    config = item.config
    rootdir = Path(config.rootpath)
    with tempfile.TemporaryDirectory(prefix="lightmem-isolated-") as tmp:
        report_file = Path(tmp) / "reports.jsonl"
        command = [
            sys.executable,
            "-m",
            "pytest",
            item.nodeid,
            "--rootdir",
            str(rootdir),
            "-p",
            "no:cacheprovider",
            "-p",
            __name__,
            "-q",
            "--no-header",
            "-o",
            "console_output_style=classic",
            f"{_CHILD_OPTION}={report_file}",
        ]
        if config.inipath is not None:
            command[4:4] = ["-c", str(config.inipath)]
        env = dict(os.environ, PYTHONFAULTHANDLER="1")
        try:
            done = subprocess.run(
                command,
                cwd=rootdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                timeout=timeout,
            )
            output = done.stdout.decode("utf-8", "replace")
            returncode: int | None = done.returncode
        except subprocess.TimeoutExpired as exc:
            output = (exc.stdout or b"").decode("utf-8", "replace")
            returncode = None
        reports = _read_reports(config, report_file)
    return _complete(item, reports, returncode, output, timeout)


def _read_reports(config: pytest.Config, path: Path) -> list[TestReport]:
    if not path.exists():
        return []
    reports = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            data = json.loads(line)
            report = config.hook.pytest_report_from_serializable(config=config, data=data)
            if isinstance(report, TestReport):
                if isinstance(report.longrepr, list):  # a skip's (path, line, reason)
                    report.longrepr = tuple(report.longrepr)
                reports.append(report)
    return reports


def _report(item: pytest.Item, when: str, outcome: str, text: Any = None) -> TestReport:
    return TestReport(
        item.nodeid,
        item.location,
        {k: 1 for k in item.keywords},
        outcome,  # type: ignore[arg-type]
        text,
        when,  # type: ignore[arg-type]
        duration=0.0,
    )


def _complete(
    item: pytest.Item,
    reports: list[TestReport],
    returncode: int | None,
    output: str,
    timeout: float,
) -> list[TestReport]:
    """The child's reports, with a failing one where the child died before reporting."""
    reports = [r for r in reports if r.nodeid == item.nodeid]
    seen = {r.when for r in reports}
    if {"setup", "call", "teardown"} <= seen or ("setup" in seen and "teardown" in seen):
        return reports  # complete (a failed or skipped setup has no call report)
    if returncode is None:
        cause = f"its isolated process ran longer than {timeout:g} s and was killed"
    elif returncode < 0 or reports:
        cause = _death(returncode)
    else:
        cause = f"{_death(returncode)} before running it"
    tail = "\n".join(output.rstrip().splitlines()[-30:])
    longrepr = f"{cause}\n--- last lines of its output ---\n{tail}"

    def make(when: str, outcome: str, text: Any = None) -> TestReport:
        return _report(item, when, outcome, text)

    out = list(reports)
    if "setup" not in seen:
        out.append(make("setup", "passed"))
    if "call" not in seen:
        out.append(make("call", "failed", longrepr))
    else:
        out.append(make("teardown", "failed", longrepr))
        return out
    out.append(make("teardown", "passed"))
    return out


class _ChildReporter:
    """In the child: append each report of the run to the parent's file as it is made."""

    def __init__(self, config: pytest.Config, path: str) -> None:
        self.config, self.path = config, path

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: TestReport) -> None:
        data = self.config.hook.pytest_report_to_serializable(config=self.config, report=report)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(data) + "\n")
            f.flush()


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    path = session.config.getoption(_CHILD_OPTION)
    if path:
        session.config.pluginmanager.register(
            _ChildReporter(session.config, path), "lightmem-isolated-child"
        )
