"""The original LightMem quick-start flow on the embedded backends, and reopening a store."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

for _module in ("lightmem_huggingface", "lightmem_qdrant", "lightmem_sqlite_index"):
    pytest.importorskip(_module, reason="the embedded default plugins are not installed")

from lightmem_core import LightMemory  # noqa: E402

SESSIONS = [
    [
        {
            "role": "user",
            "content": "Hi, I'm Sam. I just adopted a beagle puppy called Pepper.",
            "time_stamp": "2023/05/20 (Sat) 02:21",
        },
        {
            "role": "assistant",
            "content": "Congratulations! Beagles are very curious dogs.",
            "time_stamp": "2023/05/20 (Sat) 02:22",
        },
    ],
    [
        {
            "role": "user",
            "content": "I work night shifts as a nurse at the city hospital.",
            "time_stamp": "2023/06/02 (Fri) 20:05",
        },
        {
            "role": "assistant",
            "content": "That sounds demanding.",
            "time_stamp": "2023/06/02 (Fri) 20:06",
        },
    ],
    [
        {
            "role": "user",
            "content": "My sister Lena is visiting from Berlin next week.",
            "time_stamp": "2023/06/15 (Thu) 11:40",
        },
    ],
]


@pytest.mark.slow
def test_original_quickstart_flow(tmp_path):
    config = {
        "pre_compress": False,
        "topic_segment": True,
        "precomp_topic_shared": False,
        "topic_segmenter": {"model_name": "embedding"},
        "messages_use": "user_only",
        "metadata_generate": True,
        "text_summary": True,
        "extract_threshold": 0.1,
        "index_strategy": "embedding",
        "text_embedder": {
            "model_name": "huggingface",
            "configs": {"embedding_dims": 384, "model_kwargs": {"device": "cpu"}},
        },
        "retrieve_strategy": "embedding",
        "embedding_retriever": {
            "model_name": "qdrant",
            "configs": {
                "collection_name": "quickstart",
                "embedding_model_dims": 384,
                "path": str(tmp_path / "quickstart"),
            },
        },
        "update": "offline",
        "history_db_path": str(tmp_path / "history.db"),
        "memory_dir": str(tmp_path),
    }
    lightmem = LightMemory.from_config(config)
    for turn_messages in SESSIONS:
        lightmem.add_memory(messages=turn_messages, force_segment=True, force_extract=True)
    answers = {
        "What is the name of my dog?": "Pepper",
        "What do I do for a living?": "nurse",
        "When is my sister visiting?": "Lena",
    }
    for question, expected in answers.items():
        retrieved = lightmem.retrieve(question, limit=5)
        assert expected in retrieved[0], (question, retrieved)
    assert lightmem.retrieve("What is the name of my dog?", limit=5)[0].startswith(
        "2023-05-20 02:21 Sat"
    )
    lightmem.close()


REOPEN = """
import json, sys
from lightmem_core import LightMemory
mem = LightMemory(memory_dir=sys.argv[1])
if sys.argv[2] == "write":
    for session in json.loads(sys.argv[3]):
        mem.add_memory(session, force_segment=True, force_extract=True, user_id="sam")
out = {q: [(h.entry.memory, round(h.score, 6)) for h in mem.search(q, limit=3, user_id="sam")]
       for q in ("what is my dog called", "where do I work", "sister visiting")}
print(json.dumps(out))
"""


@pytest.mark.slow
def test_reopening_in_a_new_process_gives_the_same_answers(tmp_path):
    def run(*args):
        out = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(REOPEN), *args],
            capture_output=True,
            text=True,
            check=True,
            cwd=tmp_path,
        )
        return json.loads(out.stdout.strip().splitlines()[-1])

    first = run(str(tmp_path / "mem"), "write", json.dumps(SESSIONS))
    second = run(str(tmp_path / "mem"), "read")
    assert first == second
    assert first["what is my dog called"][0][0].endswith("called Pepper.")
