"""Loaders of LoCoMo, LongMemEval and message-list files (synthetic samples written here)."""

from __future__ import annotations

import json

import pytest
from lightmem_hookspecs import Scope

from lightmem_core.datasets import (
    detect_format,
    load_conversations,
    load_messages_file,
    normalize_dia_id,
)
from lightmem_core.errors import InputError
from lightmem_core.messages import normalize_messages, parse_time


def locomo_sample(sample_id: str = "conv-x") -> dict:
    return {
        "sample_id": sample_id,
        "conversation": {
            "speaker_a": "Ana",
            "speaker_b": "Ben",
            "session_1_date_time": "1:56 pm on 8 May, 2023",
            "session_1": [
                {"speaker": "Ana", "dia_id": "D1:1", "text": "Hi Ben! I adopted a puppy."},
                {
                    "speaker": "Ben",
                    "dia_id": "D1:2",
                    "text": "Look at my garden.",
                    "img_url": ["http://example.invalid/x.jpg"],
                    "blip_caption": "a photo of tomatoes on a vine",
                },
            ],
            "session_2_date_time": "10:04 am on 2 June, 2023",
            "session_2": [
                {"speaker": "Ben", "dia_id": "D2:1", "text": "How is the puppy?"},
                {"speaker": "Ana", "dia_id": "D2:2", "text": "Rex is great, he learned to sit."},
            ],
            "session_3_date_time": "9:00 am on 3 June, 2023",
            "session_3": [],
        },
        "qa": [
            {
                "question": "What is Ana's dog called?",
                "answer": "Rex",
                "evidence": ["D2:2"],
                "category": 4,
            },
            {
                "question": "When did Ana adopt a puppy?",
                "answer": 2023,
                "evidence": ["D1:1; D2:2"],
                "category": 2,
            },
            {
                "question": "What does Ben grow?",
                "answer": "tomatoes",
                "evidence": ["D:1:2", "D9:9", "D"],
                "category": 1,
            },
            {
                "question": "What did Ana paint?",
                "adversarial_answer": "a lake",
                "evidence": [],
                "category": 5,
            },
        ],
    }


def longmemeval_sample() -> dict:
    return {
        "question_id": "q-42",
        "question_type": "single-session-user",
        "question": "What breed is my dog?",
        "answer": "a border collie",
        "question_date": "2023/06/01 (Thu) 10:00",
        "haystack_session_ids": ["s-a", "s-b"],
        "haystack_dates": ["2023/05/20 (Sat) 02:21", "2023/05/28 (Sun) 18:05"],
        "haystack_sessions": [
            [
                {"role": "user", "content": "I like hiking."},
                {"role": "assistant", "content": "Hiking is great exercise."},
            ],
            [
                {"role": "user", "content": "My border collie loves frisbee.", "has_answer": True},
                {"role": "assistant", "content": "Border collies are energetic!"},
            ],
        ],
        "answer_session_ids": ["s-b"],
    }


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_locomo_sessions_become_user_messages_with_speakers_and_ids(tmp_path):
    path = write(tmp_path, "locomo.json", [locomo_sample()])
    (conv,) = load_conversations(path)
    assert conv.format == "locomo"
    assert conv.sample_id == "conv-x"
    assert conv.speakers == ("Ana", "Ben")
    assert [s.id for s in conv.sessions] == ["session_1", "session_2"]  # empty session left out
    first, photo = conv.sessions[0].messages
    assert first == {
        "id": "conv-x:D1:1",
        "role": "user",
        "content": "Hi Ben! I adopted a puppy.",
        "time_stamp": "1:56 pm on 8 May, 2023",
        "speaker_name": "Ana",
        "speaker_id": "speaker_a",
    }
    assert photo["content"] == "Look at my garden. [shares a photo: a photo of tomatoes on a vine]"
    assert photo["speaker_id"] == "speaker_b"
    assert all(m["role"] == "user" for m in conv.messages)


def test_locomo_messages_pass_core_normalization_with_session_times(tmp_path):
    (conv,) = load_conversations(write(tmp_path, "l.json", [locomo_sample()]))
    normalized = normalize_messages(conv.messages, Scope())
    assert [m.id for m in normalized] == [
        "conv-x:D1:1",
        "conv-x:D1:2",
        "conv-x:D2:1",
        "conv-x:D2:2",
    ]
    assert normalized[0].time_stamp == parse_time("2023-05-08T13:56:00")
    assert normalized[3].time_stamp == parse_time("2023-06-02T10:04:00")
    assert normalized[3].speaker_name == "Ana"


def test_locomo_questions_map_evidence_to_message_ids(tmp_path):
    (conv,) = load_conversations(write(tmp_path, "l.json", [locomo_sample()]))
    by_text = {q.question: q for q in conv.questions}
    assert by_text["What is Ana's dog called?"].evidence == ("conv-x:D2:2",)
    assert by_text["What is Ana's dog called?"].category == 4
    # "D1:1; D2:2" in one string is split; the answer (a number) becomes a string
    assert by_text["When did Ana adopt a puppy?"].evidence == ("conv-x:D1:1", "conv-x:D2:2")
    assert by_text["When did Ana adopt a puppy?"].answer == "2023"
    # "D:1:2" is repaired; ids of turns that do not exist are dropped and reported
    assert by_text["What does Ben grow?"].evidence == ("conv-x:D1:2",)
    assert conv.dropped_evidence == ("qa[2]:D9:9", "qa[2]:D")
    assert by_text["What did Ana paint?"].answer == "a lake"
    assert by_text["What did Ana paint?"].evidence == ()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("D1:3", "D1:3"), ("D:11:26", "D11:26"), ("D30:05", "D30:5"), ("D", None), ("x1:2", None)],
)
def test_normalize_dia_id(raw, expected):
    assert normalize_dia_id(raw) == expected


def test_samples_are_selected_in_file_order_and_unknown_ids_refused(tmp_path):
    path = write(tmp_path, "l.json", [locomo_sample("a"), locomo_sample("b"), locomo_sample("c")])
    assert [c.sample_id for c in load_conversations(path, samples=["c", "a"])] == ["a", "c"]
    with pytest.raises(InputError, match="no sample"):
        load_conversations(path, samples=["zzz"])


def test_longmemeval_sample(tmp_path):
    (conv,) = load_conversations(write(tmp_path, "lme.json", [longmemeval_sample()]))
    assert conv.format == "longmemeval"
    assert conv.sample_id == "q-42"
    assert [s.id for s in conv.sessions] == ["s-a", "s-b"]
    message = conv.sessions[1].messages[0]
    assert message["id"] == "q-42:s-b:0"
    assert message["role"] == "user"
    assert message["time_stamp"] == "2023/05/28 (Sun) 18:05"
    assert conv.sessions[0].messages[1]["role"] == "assistant"
    (question,) = conv.questions
    assert question.evidence == ("q-42:s-b:0",)  # the turn marked has_answer
    assert question.evidence_sessions == ("s-b",)
    assert question.question_date == "2023/06/01 (Thu) 10:00"
    normalized = normalize_messages(conv.messages, Scope())
    assert normalized[2].time_stamp == parse_time("2023-05-28T18:05:00")


def test_longmemeval_without_marks_uses_answer_sessions(tmp_path):
    sample = longmemeval_sample()
    del sample["haystack_sessions"][1][0]["has_answer"]
    (conv,) = load_conversations(write(tmp_path, "lme.json", sample))  # a single sample
    assert conv.questions[0].evidence == ("q-42:s-b:0", "q-42:s-b:1")


def test_message_lists_json_and_jsonl(tmp_path):
    messages = [
        {"role": "user", "content": "I moved to Lisbon.", "time_stamp": "2024-03-02T09:15:00"},
        {"role": "assistant", "content": "Nice!"},
    ]
    (conv,) = load_conversations(write(tmp_path, "m.json", messages))
    assert conv.format == "messages"
    assert [list(s.messages) for s in conv.sessions] == [messages]
    jsonl = tmp_path / "m.jsonl"
    jsonl.write_text("\n".join(json.dumps(m) for m in messages) + "\n", encoding="utf-8")
    assert load_messages_file(jsonl) == [messages]


def test_sessions_with_dates_fill_missing_time_stamps(tmp_path):
    data = {
        "user": "maya",
        "sessions": [
            {"date": "2024-03-02T09:15:00", "messages": [{"role": "user", "content": "Hi"}]},
            {
                "date": "2024-03-09T10:00:00",
                "messages": [
                    {"role": "user", "content": "Hello", "time_stamp": "2024-03-09T10:05:00"}
                ],
            },
        ],
    }
    sessions = load_messages_file(write(tmp_path, "demo.json", data))
    assert sessions[0][0]["time_stamp"] == "2024-03-02T09:15:00"
    assert sessions[1][0]["time_stamp"] == "2024-03-09T10:05:00"


def test_load_messages_file_needs_one_sample(tmp_path):
    path = write(tmp_path, "l.json", [locomo_sample("a"), locomo_sample("b")])
    with pytest.raises(InputError, match="holds 2 samples"):
        load_messages_file(path)
    sessions = load_messages_file(path, sample="b")
    assert sessions[0][0]["id"] == "b:D1:1"


def test_unknown_formats_and_bad_json_are_refused(tmp_path):
    with pytest.raises(InputError, match="cannot tell"):
        detect_format([{"foo": 1}])
    bad = tmp_path / "bad.json"
    bad.write_text("[{", encoding="utf-8")
    with pytest.raises(InputError, match="invalid JSON"):
        load_conversations(bad)
    with pytest.raises(InputError, match="no such file"):
        load_conversations(tmp_path / "missing.json")
