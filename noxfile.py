"""Nox sessions: the core alone, each plugin alone, everything together, lint, typing, docs,
benchmarks and the demo. Every install goes through constraints.txt (CPU torch)."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import nox

ROOT = Path(__file__).parent
PLUGINS = sorted(p.name for p in (ROOT / "plugins").iterdir() if (p / "pyproject.toml").exists())
CONSTRAINTS = ("-c", str(ROOT / "constraints.txt"))
#: Libraries under libs/ (shared code, no entry point) by distribution name.
LIBS = {
    tomllib.loads(p.read_text())["project"]["name"]: f"./{p.parent.relative_to(ROOT)}"
    for p in sorted((ROOT / "libs").glob("*/pyproject.toml"))
}

nox.options.sessions = ["core", "plugins", "all", "lint", "typing"]
nox.options.reuse_existing_virtualenvs = True


def _install(session: nox.Session, *paths: str) -> None:
    session.install(*CONSTRAINTS, "pytest")
    session.install(*CONSTRAINTS, "./hookspecs", ".", *paths)


@nox.session
def core(session: nox.Session) -> None:
    """The core and the contract alone, with the core's test extra (hypothesis, tiktoken):
    tests that need a plugin skip; the LLM layer runs on the testing kit's scripted manager."""
    session.install(*CONSTRAINTS, "./hookspecs", ".[test]")
    session.run("pytest", "tests", *session.posargs)


def _local_libs(dist: Path) -> list[str]:
    """The libs/ folders that the distribution at ``dist`` depends on (they are not on PyPI)."""
    deps = tomllib.loads((dist / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.split(r"[\s<>=!~;\[]", d, maxsplit=1)[0] for d in deps}
    return [LIBS[n] for n in sorted(names & set(LIBS))]


@nox.session
@nox.parametrize("plugin", PLUGINS)
def plugins(session: nox.Session, plugin: str) -> None:
    """Core + one plugin in a fresh environment: it is discovered and its tests pass."""
    libs = _local_libs(ROOT / "plugins" / plugin)
    optional = tomllib.loads((ROOT / "plugins" / plugin / "pyproject.toml").read_text())[
        "project"
    ].get("optional-dependencies", {})
    extras = ["test"] if "test" in optional else []  # e.g. the servers its tests start
    if plugin == "lightmem-llamacpp":
        extras.append("prebuilt")  # its llama.cpp runtime
    extra = f"[{','.join(extras)}]" if extras else ""
    _install(session, *libs, f"./plugins/{plugin}{extra}")
    out = session.run("lightmem", "plugins", "--json", silent=True)
    data = json.loads(out)
    dists = {p["distribution"] for p in data["plugins"] if not p["error"]}
    if plugin not in dists:
        session.error(f"{plugin} is not discovered: {json.dumps(data, indent=2)}")
    session.run("pytest", f"plugins/{plugin}", *libs, *session.posargs)


@nox.session
def all(session: nox.Session) -> None:
    """Everything installed: the core's tests again, then every plugin's."""
    session.install(*CONSTRAINTS, "-r", "requirements-test.txt")
    session.run("pytest", *session.posargs)


#: A llama.cpp build that runs on any x86-64 CPU: no host instruction sets compiled in, one CPU
#: backend per instruction-set level, the best one chosen at run time.
PORTABLE_LLAMA_CMAKE_ARGS = "-DGGML_NATIVE=OFF -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON"


@nox.session
def llamacpp_source(session: nox.Session) -> None:
    """The llama-cpp plugin on llama-cpp-python compiled here, portably (an hour or more on 2
    cores; the default test install uses the prebuilt AVX2 wheel instead). The compiler's
    progress is shown (pip -v)."""
    _install(session)
    session.install(
        *CONSTRAINTS,
        "-v",
        "./plugins/lightmem-llamacpp[source]",
        env={"CMAKE_ARGS": PORTABLE_LLAMA_CMAKE_ARGS, "FORCE_CMAKE": "1"},
    )
    session.run("pytest", "plugins/lightmem-llamacpp", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install(*CONSTRAINTS, "ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typing(session: nox.Session) -> None:
    """mypy on the contract and the core."""
    _install(session)
    session.install(*CONSTRAINTS, "mypy", "types-PyYAML")
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
        if script.name != "startup.py" and not script.name.startswith("_"):
            session.run("python", str(script), *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    session.install(*CONSTRAINTS, "-r", "requirements-default.txt")
    session.run("lightmem", "demo")
