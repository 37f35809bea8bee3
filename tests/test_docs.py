"""Docs meta-tests: the configuration reference lists every key."""

from __future__ import annotations

from pathlib import Path

import attrs

from lightmem_core.config import LightMemConfig

ROOT = Path(__file__).resolve().parents[1]


def test_every_config_key_is_in_the_reference():
    doc = (ROOT / "docs" / "configuration.md").read_text()
    missing = [f.name for f in attrs.fields(LightMemConfig) if f"`{f.name}`" not in doc]
    assert not missing, f"docs/configuration.md does not document: {missing}"


def test_readme_starts_with_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    blocks = readme.split("```")
    assert "lightmem demo" in blocks[1]
    assert "pytest" in blocks[3] and "requirements-test.txt" in blocks[3]
    ci = (ROOT / ".ci" / "run").read_text()
    assert blocks[3].strip().splitlines()[-1].strip() in ci


def test_readme_says_how_many_build_warnings_the_test_install_prints():
    import re

    readme = (ROOT / "README.md").read_text()
    said = re.search(
        r"`BuildBackendWarning: Editable installation` block for each of the (\d+)", readme
    )
    assert said, "the README does not explain the install's BuildBackendWarning blocks"
    requirements = (ROOT / "requirements-test.txt").read_text().splitlines()
    editable = [line for line in requirements if line.startswith("-e ")]
    assert int(said.group(1)) == len(editable)
