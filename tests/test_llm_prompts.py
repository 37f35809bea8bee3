"""The prompt set: defaults, rendering, and validation of overrides."""

from __future__ import annotations

import pytest

from lightmem_core.errors import ConfigError
from lightmem_core.llm.prompts import PLACEHOLDERS, Prompts, template_problems


def test_defaults_are_valid_and_keep_their_placeholders():
    prompts = Prompts()
    for name, required in PLACEHOLDERS.items():
        assert template_problems(name, getattr(prompts, name)) == []
        for placeholder in required:
            assert f"${placeholder}" in getattr(prompts, name)


def test_render_fills_placeholders_and_leaves_json_braces_alone():
    prompts = Prompts(extraction='Shape: {"facts": []}. $output_format\n---\n$conversation\n')
    text = prompts.render("extraction", conversation="[m1] hi", output_format="FORMAT")
    assert text == 'Shape: {"facts": []}. FORMAT\n---\n[m1] hi\n'


def test_a_value_containing_dollar_signs_is_not_expanded():
    text = Prompts().render("retry", error="costs $amount and $$")
    assert "costs $amount and $$" in text


def test_render_refuses_wrong_placeholders():
    with pytest.raises(TypeError, match="conversation"):
        Prompts().render("extraction", output_format="x")


def test_override_missing_a_placeholder_names_the_path_and_the_placeholder():
    with pytest.raises(ConfigError) as info:
        Prompts(extraction="Extract facts from:\n$conversation")
    message = str(info.value)
    assert "$.prompts.extraction" in message
    assert "$output_format" in message


def test_override_with_unknown_placeholder_is_refused():
    with pytest.raises(ConfigError, match=r"unknown placeholder\(s\) \$today"):
        Prompts(update="$memories $checks $output_format $today")


def test_a_stray_dollar_sign_is_refused_with_a_hint():
    with pytest.raises(ConfigError, match=r"write '\$\$' for a literal dollar"):
        Prompts(update="$memories $checks $output_format costs $5")


def test_a_literal_dollar_written_twice_is_fine():
    prompts = Prompts(update="Budget $$5. $memories $checks ${output_format}")
    text = prompts.render("update", memories="T", checks="C", output_format="F")
    assert text == "Budget $5. T C F"


def test_empty_and_non_string_overrides_are_refused():
    with pytest.raises(ConfigError, match="must not be empty"):
        Prompts(reconcile="   ")
    with pytest.raises(ConfigError, match="must be a string"):
        Prompts(retry=42)  # type: ignore[arg-type]


def test_every_problem_of_one_template_is_reported():
    problems = template_problems("reconcile", "$memories $extra")
    assert len(problems) == 2
    assert any("$checks" in p and "$output_format" in p for p in problems)
    assert any("$extra" in p for p in problems)
