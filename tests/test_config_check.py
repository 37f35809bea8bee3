"""`lightmem config check` (and every configuration read) reports every problem in one run, each
with its `$.path`, and suggests the key a misspelt one meant."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from lightmem_core.config import parse_config, resolve
from lightmem_core.errors import BackendNotFoundError, ConfigError

BAD = {
    "retreive_strategy": "hybrid",
    "sensory_buffer_tokens": 0,
    "short_term_buffer_tokens": -5,
    "extract_threshold": 3,
    "messages_use": "everyone",
    "graph": {"hopz": 2},
    "memory_manager": {"model_name": "no-such-llm"},
    "reranker": [
        {"model_name": "newer_first", "configs": {"score_ratio": 3, "min_word_length": 0}}
    ],
}

EXPECTED = [
    "$: unknown key(s) retreive_strategy (did you mean retrieve_strategy?)",
    "$.sensory_buffer_tokens: must be > 0, got 0",
    "$.short_term_buffer_tokens: must be > 0, got -5",
    "$.extract_threshold: must be between 0 and 1, got 3",
    "$.messages_use: expected one of 'user_only', 'assistant_only', 'hybrid', got 'everyone'",
    "$.graph: unknown key(s) hopz (did you mean hops?)",
    "$.memory_manager.model_name: no memory_manager backend named 'no-such-llm' is installed",
    "$.reranker[0].configs.score_ratio: must be between 0 and 1, got 3",
    "$.reranker[0].configs.min_word_length: must be >= 1, got 0",
]


def test_every_problem_is_reported_in_one_run(ref_host):
    with pytest.raises(BackendNotFoundError) as info:
        resolve(BAD, ref_host)
    text = str(info.value)
    missing = [line for line in EXPECTED if line not in text]
    assert not missing, text


def test_every_failing_validator_of_one_section_is_reported():
    with pytest.raises(ConfigError) as info:
        parse_config({"online_update_top_k": 0, "retry_backoff": -1, "lock_timeout": -2})
    paths = [line.split(": ", 1)[0] for line in info.value.errors]
    assert paths == ["$.online_update_top_k", "$.retry_backoff", "$.lock_timeout"]


def test_config_check_prints_every_problem(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(BAD))
    done = subprocess.run(
        [sys.executable, "-m", "lightmem_core.cli", "config", "check", str(path)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    missing = [line for line in EXPECTED if line not in done.stderr]
    assert not missing, done.stderr


def test_a_key_with_no_near_match_gets_no_suggestion():
    with pytest.raises(ConfigError) as info:
        parse_config({"colour_scheme": "dark"})
    assert "unknown key(s) colour_scheme;" in str(info.value)
    assert "did you mean" not in str(info.value)
