"""The contract's public surface is versioned: it changes only with a version bump and a
changelog entry, and the bump is the one the change needs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from lightmem_hookspecs import BREAKING_CHANGES, CONTRACT_VERSION, compatible, parse_version
from lightmem_hookspecs.surface import bump_satisfied, parse, render, required_bump, surface_lines

ROOT = Path(__file__).resolve().parents[1]
SNAPSHOT = ROOT / "hookspecs" / "contract-surface.txt"
CHANGELOG = ROOT / "hookspecs" / "CHANGELOG.md"
WRITE = "python -m lightmem_hookspecs.surface --write hookspecs/contract-surface.txt"


def check_snapshot(snapshot_text: str, version: str, lines: list[str], changelog: str) -> None:
    """What the test below asserts, as a function the test of the test can call."""
    stored_version, stored = parse(snapshot_text)
    bump = required_bump(stored, lines)
    changed = sorted(set(stored) ^ set(lines))
    diff = "\n".join(("+ " if line in lines else "- ") + line for line in changed)
    assert bump is None or stored_version != version, (
        f"the contract's surface changed but its version is still {version}: this change "
        f"needs a {bump} version bump (CONTRACT_VERSION in hookspecs/lightmem_hookspecs/"
        f"contract.py), a section in hookspecs/CHANGELOG.md, then `{WRITE}`.\n{diff}"
    )
    assert bump_satisfied(stored_version, version, bump), (
        f"the change from {stored_version} to {version} needs a {bump} version bump:\n{diff}"
    )
    assert re.search(rf"^## {re.escape(version)}\b", changelog, re.M), (
        f"hookspecs/CHANGELOG.md has no section for {version}"
    )
    assert bump is None, f"store the new surface of {version}: `{WRITE}`\n{diff}"


def test_the_surface_matches_the_snapshot_of_this_version():
    check_snapshot(SNAPSHOT.read_text(), CONTRACT_VERSION, surface_lines(), CHANGELOG.read_text())


def test_every_breaking_change_has_a_changelog_section_with_a_migration_note():
    changelog = CHANGELOG.read_text()
    for version in BREAKING_CHANGES:
        section = changelog.split(f"## {version}", 1)
        assert len(section) == 2, f"CHANGELOG.md has no section for {version}"
        body = section[1].split("\n## ", 1)[0]
        assert body.count("*Migration:*") >= len(BREAKING_CHANGES[version])


def test_the_distribution_version_is_the_contract_version():
    pyproject = (ROOT / "hookspecs" / "pyproject.toml").read_text()
    assert 'attr = "lightmem_hookspecs.contract.CONTRACT_VERSION"' in pyproject


# -- the check itself fails where it must ----------------------------------------------------

CHANGELOG_1_0 = "## 1.0.0\n\nfirst\n"


def _changed(lines: list[str], old: str, new: str) -> list[str]:
    assert old in lines
    return sorted([new if line == old else line for line in lines])


def _snapshot(version: str = "1.0.0") -> str:
    return render(version, surface_lines())


def test_a_changed_hook_signature_without_a_bump_fails():
    lines = surface_lines()
    old = next(line for line in lines if line.startswith("hook lightmem_query_prepared("))
    changed = _changed(lines, old, old.replace("context: 'HookContext'", "ctx: 'HookContext'"))
    with pytest.raises(AssertionError, match="needs a major version bump"):
        check_snapshot(_snapshot(), "1.0.0", changed, CHANGELOG_1_0)
    with pytest.raises(AssertionError, match="needs a major version bump"):
        check_snapshot(_snapshot(), "1.1.0", changed, CHANGELOG_1_0 + "## 1.1.0\n")


def test_a_new_protocol_member_is_major_and_a_new_hook_minor():
    lines = surface_lines()
    grown = sorted([*lines, "protocol Reranker.explain(self) -> 'str'"])
    assert required_bump(lines, grown) == "major"
    new_hook = sorted([*lines, "hook lightmem_new_thing(context: 'HookContext') -> 'None'"])
    assert required_bump(lines, new_hook) == "minor"
    new_protocol = sorted([*lines, "protocol ExampleStore", "protocol ExampleStore.get(self)"])
    assert required_bump(lines, new_protocol) == "minor"
    optional = sorted([*lines, "type SearchHit.note: str = ''"])
    assert required_bump(lines, optional) == "minor"
    required = sorted([*lines, "type SearchHit.note: str"])
    assert required_bump(lines, required) == "major"


def test_a_bumped_version_without_a_changelog_section_or_snapshot_fails():
    lines = sorted([*surface_lines(), "hook lightmem_new_thing(context: 'HookContext') -> 'None'"])
    with pytest.raises(AssertionError, match=r"no section for 1\.1\.0"):
        check_snapshot(_snapshot(), "1.1.0", lines, CHANGELOG_1_0)
    with pytest.raises(AssertionError, match="store the new surface"):
        check_snapshot(_snapshot(), "1.1.0", lines, CHANGELOG_1_0 + "## 1.1.0\n")
    check_snapshot(render("1.1.0", lines), "1.1.0", lines, CHANGELOG_1_0 + "## 1.1.0\n")


def test_compatibility_rule():
    assert compatible("1.0", "1.3.2")
    assert not compatible("1.4", "1.3.2"), "a plugin needing a newer minor is refused"
    assert not compatible("0.1.0", "1.0.0")
    assert not compatible("2.0", "1.9")
    assert compatible("0.2.1", "0.2.5") and not compatible("0.1", "0.2")
    assert parse_version("1") == (1, 0, 0)
