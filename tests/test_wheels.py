"""Every distribution of the repository builds a wheel and an sdist that ``twine check`` accepts,
and the default set plus a third-party plugin install from those wheels (not editable, not from
the checkout) into a fresh virtual environment with the pip and setuptools ``venv`` ships, where
the demo answers: what a user does once the wheels are on the package index.

Every command in the fresh environment runs with ``python -I`` (no current directory, no
``PYTHONPATH`` on ``sys.path``), so nothing can come from the checkout. The wheels and sdists
are built once for the module (``python -m build --no-isolation``, with
this environment's setuptools: nothing is downloaded). The fresh environment gets the
third-party dependencies (torch, sentence-transformers, qdrant...) from the package index
through pip's cache, under the repository's constraints.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Every distribution folder of the repository.
DISTRIBUTIONS = [
    ROOT / "hookspecs",
    ROOT,
    *sorted(p.parent for p in (ROOT / "libs").glob("*/pyproject.toml")),
    *sorted(p.parent for p in (ROOT / "plugins").glob("*/pyproject.toml")),
    ROOT / "docs" / "tutorial" / "lightmem-example",
]

#: The embedded default (requirements-default.txt) and a third-party plugin.
DEFAULT_SET = (
    "lightmem-hookspecs",
    "lightmem-core",
    "lightmem-textkit",
    "lightmem-huggingface",
    "lightmem-qdrant",
    "lightmem-bm25",
    "lightmem-sqlite-index",
)
THIRD_PARTY = "lightmem-example"

pytestmark = pytest.mark.slow


def _name(folder: Path) -> str:
    return tomllib.loads((folder / "pyproject.toml").read_text())["project"]["name"]


def _file_stem(name: str) -> str:
    return name.replace("-", "_")


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory):
    pytest.importorskip("build", reason="requirements-test.txt installs build")
    out = tmp_path_factory.mktemp("wheelhouse")
    for folder in DISTRIBUTIONS:
        result = subprocess.run(
            [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(folder)],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, (
            f"building {folder} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
        )
    return out


def test_every_distribution_builds_a_wheel_and_an_sdist_that_twine_accepts(wheelhouse):
    files = sorted(p.name for p in wheelhouse.iterdir())
    for folder in DISTRIBUTIONS:
        stem = _file_stem(_name(folder))
        assert any(f.startswith(f"{stem}-") and f.endswith(".whl") for f in files), stem
        assert any(f.startswith(f"{stem}-") and f.endswith(".tar.gz") for f in files), stem
    result = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, wheelhouse.iterdir())],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_names_are_not_the_unrelated_lightmem_on_the_index():
    names = {_name(folder) for folder in DISTRIBUTIONS}
    assert "lightmem" not in names, "`lightmem` on the package index is an unrelated project"
    assert all(n.startswith("lightmem-") for n in names)


#: Per distribution: where its first module file is, and whether it is an editable install.
WHERE = """
import json, sys
from importlib.metadata import distribution
out = {}
for name in sys.argv[1:]:
    dist = distribution(name)
    module = next(f for f in dist.files if f.suffix == ".py")
    direct = json.loads(dist.read_text("direct_url.json") or "{}")
    where = str(dist.locate_file(module).resolve())
    out[name] = (where, direct.get("dir_info", {}).get("editable", False))
print(json.dumps(out))
"""


def _wheel(wheelhouse: Path, name: str) -> Path:
    [wheel] = wheelhouse.glob(f"{_file_stem(name)}-*.whl")
    return wheel


def test_the_default_set_and_a_third_party_plugin_install_from_wheels_and_run_the_demo(
    wheelhouse, tmp_path
):
    venv = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    wheels = [str(_wheel(wheelhouse, n)) for n in (*DEFAULT_SET, THIRD_PARTY)]
    install = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--find-links",
            str(wheelhouse),
            "-c",
            str(ROOT / "constraints.txt"),
            *wheels,
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]

    def run(*args: str) -> str:
        done = subprocess.run(
            [str(python), "-I", "-m", "lightmem_core.cli", *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return done.stdout

    site = subprocess.run(
        [str(python), "-I", "-c", "import lightmem_core; print(lightmem_core.__file__)"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=True,
    ).stdout.strip()
    assert site.startswith(str(venv)), f"lightmem_core imported from {site}, not the fresh venv"
    plugins = json.loads(run("plugins", "--json"))["plugins"]
    by_dist = {p["distribution"]: p for p in plugins}
    for name in (*DEFAULT_SET, THIRD_PARTY):
        if name in ("lightmem-hookspecs", "lightmem-textkit"):
            continue  # no entry point: the contract and a library
        assert name in by_dist, f"{name} was not discovered: {sorted(by_dist)}"
        assert by_dist[name]["error"] is None, by_dist[name]["error"]
    where = subprocess.run(
        [str(python), "-I", "-c", WHERE, *DEFAULT_SET, THIRD_PARTY],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=True,
    ).stdout
    for name, (location, editable) in json.loads(where).items():
        assert location.startswith(str(venv)), f"{name} is installed at {location}"
        assert not editable, f"{name} is an editable install"
    answer = run("demo", "--memory-dir", str(tmp_path / "demo"))
    first = answer.split("Q: What is the name of my dog?")[1].split("Q:")[0]
    assert "Biscuit" in first.strip().splitlines()[1]
