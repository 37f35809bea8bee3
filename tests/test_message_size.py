"""max_message_chars: a message over the limit is refused before anything is written, or cut
when truncate_long_messages says so; the CLI reports the same."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from lightmem_core.errors import ConfigError, InputError

BIG = "word " * 30_000  # 150,000 characters


def test_an_oversized_message_is_refused_naming_it_and_the_limit(make_memory):
    mem = make_memory(max_message_chars=1000)
    messages = [
        {"role": "user", "content": "short and fine"},
        {"role": "user", "content": "x" * 1001},
    ]
    with pytest.raises(InputError) as caught:
        mem.add(messages, user_id="u")
    text = str(caught.value)
    assert text.startswith("messages[1].content: 1,001 characters, over the limit of 1,000")
    assert "max_message_chars" in text and "truncate_long_messages" in text
    assert mem.get_all() == [] and mem.store.journal() == []  # nothing of the call was written


def test_the_default_limit_refuses_a_huge_message_and_none_lifts_it(make_memory, tmp_path):
    mem = make_memory()
    with pytest.raises(InputError, match="over the limit of 100,000"):
        mem.add([{"role": "user", "content": BIG}])
    mem.close()
    from lightmem_core import LightMemory
    from lightmem_core.testing.reference import reference_config

    config = reference_config(tmp_path / "other", max_message_chars=None)
    with LightMemory(config, host=mem.host) as unlimited:
        unlimited.add([{"role": "user", "content": BIG}])
        (row,) = unlimited.store.journal()
        assert len(row.message.content) == len(BIG.strip())
        # stored whole, as passages of at most indexing.max_entry_words words
        stored = unlimited.get_all()
        assert sum(len(e.memory.split()) for e in stored) == len(BIG.split())


def test_truncation_keeps_the_head_and_records_the_length(make_memory):
    mem = make_memory(max_message_chars=20, truncate_long_messages=True)
    content = "My dog is called Biscuit and he loves the beach"
    mem.add([{"role": "user", "content": content}], user_id="u")
    (row,) = mem.store.journal()
    assert row.message.content == content[:20]
    assert row.message.metadata["truncated_from"] == len(content)
    assert [e.memory for e in mem.get_all()] == [content[:20]]
    again = mem.add([{"role": "user", "content": content}], user_id="u")
    assert again.messages_added == 0  # same id as the whole message: nothing added twice


def test_a_dry_run_refuses_it_too(make_memory):
    mem = make_memory(max_message_chars=10)
    with pytest.raises(InputError, match=r"messages\[0\]\.content"):
        mem.add_memory([{"role": "user", "content": "x" * 11}], dry_run=True)


@pytest.mark.parametrize("value", [0, -5])
def test_the_limit_must_be_positive(make_memory, value):
    with pytest.raises(ConfigError, match="max_message_chars"):
        make_memory(max_message_chars=value)


def test_the_cli_refuses_an_oversized_message_naming_the_file_and_message(tmp_path):
    pytest.importorskip("lightmem_sqlite_index")
    config = tmp_path / "config.json"
    config.write_text(json.dumps(LEXICAL | {"max_message_chars": 50}))
    data = tmp_path / "chat.json"
    data.write_text(
        json.dumps([{"role": "user", "content": "fine"}, {"role": "user", "content": "y" * 51}])
    )
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "lightmem_core.cli",
            "add",
            str(data),
            "--config",
            str(config),
            "--memory-dir",
            str(tmp_path / "mem"),
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert f"{data}: messages[1].content: 51 characters, over the limit of 50" in out.stderr


#: A configuration without a text embedder: the CLI tests load no model.
LEXICAL = {
    "retrieve_strategy": "context",
    "context_retriever": {"model_name": "sqlite-bm25"},
    "text_embedder": None,
    "topic_segment": False,
}
