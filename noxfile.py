"""Nox sessions: the core alone, each plugin alone, everything together, lint, typing, docs,
benchmarks and the demo. Every install goes through constraints.txt (CPU torch)."""

from __future__ import annotations

import json
from pathlib import Path

import nox

ROOT = Path(__file__).parent
PLUGINS = sorted(p.name for p in (ROOT / "plugins").iterdir() if (p / "pyproject.toml").exists())
CONSTRAINTS = ("-c", str(ROOT / "constraints.txt"))

nox.options.sessions = ["core", "plugins", "all", "lint", "typing"]
nox.options.reuse_existing_virtualenvs = True


def _install(session: nox.Session, *paths: str) -> None:
    session.install(*CONSTRAINTS, "pytest")
    session.install(*CONSTRAINTS, "./hookspecs", ".", *paths)


@nox.session
def core(session: nox.Session) -> None:
    """The core and the contract alone: tests that need a plugin skip."""
    _install(session)
    session.run("pytest", "tests", *session.posargs)


@nox.session
@nox.parametrize("plugin", PLUGINS)
def plugins(session: nox.Session, plugin: str) -> None:
    """Core + one plugin in a fresh environment: it is discovered and its tests pass."""
    _install(session, f"./plugins/{plugin}")
    out = session.run("lightmem", "plugins", "--json", silent=True)
    data = json.loads(out)
    dists = {p["distribution"] for p in data["plugins"] if not p["error"]}
    if plugin not in dists:
        session.error(f"{plugin} is not discovered: {json.dumps(data, indent=2)}")
    session.run("pytest", f"plugins/{plugin}", *session.posargs)


@nox.session
def all(session: nox.Session) -> None:
    """Everything installed: the core's tests again, then every plugin's."""
    session.install(*CONSTRAINTS, "-r", "requirements-test.txt")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typing(session: nox.Session) -> None:
    """mypy on the contract and the core."""
    _install(session)
    session.install("mypy", "types-PyYAML")
    session.run("mypy", "hookspecs/lightmem_hookspecs", "lightmem_core")


@nox.session
def docs(session: nox.Session) -> None:
    """The docs meta-tests: every hook documented with its signature, every option listed."""
    _install(session)
    session.run("pytest", "tests/test_hooks.py", "tests/test_docs.py")


@nox.session
def benchmarks(session: nox.Session) -> None:
    """Benchmarks print numbers and write JSON under benchmarks/results/."""
    session.install(*CONSTRAINTS, "-r", "requirements-test.txt")
    session.run("python", "benchmarks/startup.py")
    for script in sorted((ROOT / "benchmarks").glob("*.py")):
        if script.name != "startup.py":
            session.run("python", str(script), *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    session.install(*CONSTRAINTS, "-r", "requirements-default.txt")
    session.run("lightmem", "demo")
