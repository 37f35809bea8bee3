"""Structured output: JSON repair, the schema subset, ask-validate-retry (scripted manager)."""

from __future__ import annotations

import json

import pytest

from lightmem_core.errors import ExtractionError
from lightmem_core.llm.structured import (
    JSONRepairError,
    StructuredOutputError,
    ask_json,
    conform,
    excerpt,
    parse_json,
    validate,
)
from lightmem_core.testing.scripted import Fault, Reply

ITEM = {
    "type": "object",
    "properties": {
        "text": {"type": "string"},
        "sources": {"type": "array", "items": {"type": "string"}},
        "importance": {"type": "number"},
    },
    "required": ["text", "sources", "importance"],
    "additionalProperties": False,
}
SCHEMA = {
    "type": "object",
    "properties": {"facts": {"type": "array", "items": ITEM}},
    "required": ["facts"],
    "additionalProperties": False,
}
KEY = "sk-test-structured-77d0a1"  # a key-shaped string the excerpt must mask
GOOD = {"facts": [{"text": "Alice lives in Berlin.", "sources": ["m1"], "importance": 0.8}]}


# -- repair -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        '{"a": [1, 2]}',
        '```json\n{"a": [1, 2]}\n```',
        '```\n{"a": [1, 2]}\n```\nAnything else?',
        'Sure! Here is the JSON:\n{"a": [1, 2]}\nHope this helps {really}.',
        "{'a': [1, 2]}",
        '{"a": [1, 2,],}',
        '\ufeff  {"a": [1, 2]}  ',
    ],
)
def test_repair_finds_the_value(raw):
    assert parse_json(raw) == {"a": [1, 2]}


def test_single_quotes_are_converted_without_touching_apostrophes_in_double_quotes():
    raw = """{'text': 'It\\'s "fine"', "note": "Bob's bike", 'ok': True, 'none': None}"""
    assert parse_json(raw) == {
        "text": 'It\'s "fine"',
        "note": "Bob's bike",
        "ok": True,
        "none": None,
    }


def test_prose_brackets_before_the_value_are_skipped():
    assert parse_json('As said in [m1], here: {"facts": []}', SCHEMA) == {"facts": []}


def test_truncated_list_keeps_complete_items_only():
    raw = (
        '{"facts": [{"text": "A", "sources": ["m1"], "importance": 0.5}, '
        '{"text": "B", "sources": ["m2"], "importance": 0.'
    )
    assert parse_json(raw, SCHEMA) == {
        "facts": [{"text": "A", "sources": ["m1"], "importance": 0.5}]
    }


def test_truncated_item_missing_required_fields_is_dropped_not_kept_partially():
    raw = (
        '{"facts": [{"text": "A", "sources": ["m1"], "importance": 0.5}, '
        '{"text": "B", "sources": ["m2"], "imp'
    )
    value = parse_json(raw, SCHEMA)
    assert [f["text"] for f in value["facts"]] == ["A"]


def test_truncated_before_any_complete_item_gives_an_empty_list():
    raw = '{"facts": [{"text": "I love cycling. I love cycling. I love cyc'
    assert parse_json(raw, SCHEMA) == {"facts": []}


def test_truncated_before_a_required_list_adds_it_empty():
    schema = {
        "type": "object",
        "properties": {
            "topics": {"type": "array", "items": {"type": "string"}},
            "facts": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["topics", "facts"],
    }
    assert parse_json('{"topics": ["a", "b", "c', schema) == {"topics": ["a", "b"], "facts": []}


def test_complete_but_malformed_json_is_not_cut():
    with pytest.raises(JSONRepairError):
        parse_json('{"a": 1 "b": 2}')


def test_no_json_at_all_raises():
    with pytest.raises(JSONRepairError, match="no JSON"):
        parse_json("I cannot help with that.")
    with pytest.raises(JSONRepairError, match="empty"):
        parse_json("   ")


def test_a_bare_list_is_wrapped_into_the_object_the_schema_wants():
    raw = '[{"text": "A", "sources": "m1", "importance": "0.9"}]'
    assert parse_json(raw, SCHEMA) == {
        "facts": [{"text": "A", "sources": ["m1"], "importance": 0.9}]
    }


def test_with_a_schema_the_fitting_candidate_wins_over_an_earlier_one():
    raw = 'Example: {"x": 1}\n```json\n{"facts": []}\n```'
    assert parse_json(raw, SCHEMA) == {"facts": []}
    assert parse_json(raw) == {"facts": []}  # the fenced body is preferred anyway


def test_nan_becomes_null():
    assert parse_json('{"a": NaN}') == {"a": None}


# -- schema subset ----------------------------------------------------------------------------


def test_validate_reports_paths():
    value = {"facts": [{"text": 3, "sources": ["m1"]}], "extra": 1}
    problems = validate(value, SCHEMA)
    assert "$: unexpected property 'extra'" in problems
    assert "$.facts[0].text: expected string, got integer" in problems
    assert "$.facts[0]: missing required property 'importance'" in problems


def test_validate_enum_range_and_sizes():
    schema = {
        "type": "object",
        "properties": {
            "action": {"type": "string", "enum": ["update", "ignore"]},
            "score": {"type": "number", "minimum": 0, "maximum": 1},
            "ids": {"type": "array", "minItems": 1, "maxItems": 2},
            "name": {"type": "string", "minLength": 1},
        },
    }
    assert validate({"action": "update", "score": 1, "ids": [1], "name": "x"}, schema) == []
    problems = validate({"action": "merge", "score": 1.5, "ids": [], "name": ""}, schema)
    assert len(problems) == 4
    assert any('"merge" is not one of "update", "ignore"' in p for p in problems)
    assert validate(True, {"type": "number"}) == ["$: expected number, got boolean"]
    assert validate(None, {"type": ["string", "null"]}) == []


def test_conform_coercions():
    schema = {
        "type": "object",
        "properties": {
            "action": {"type": "string", "enum": ["update", "ignore"]},
            "n": {"type": "integer"},
            "ids": {"type": "array", "items": {"type": "string"}},
            "note": {"type": "string"},
        },
        "additionalProperties": False,
    }
    value = {"action": " UPDATE ", "n": "3", "ids": 7, "note": None, "junk": 1}
    assert conform(value, schema) == {"action": "update", "n": 3, "ids": ["7"], "note": ""}
    assert conform({"action": "merge"}, schema) == {"action": "merge"}  # left for validate


def test_excerpt_masks_keys_and_shortens():
    text = f"Authorization: Bearer {KEY} and api_key={KEY} and {KEY} " + "x" * 1000
    short = excerpt(text, limit=120)
    assert KEY not in short
    assert "[redacted]" in short
    assert len(short) <= 125


# -- ask, validate, retry ---------------------------------------------------------------------


def test_valid_first_answer_makes_one_call_and_sends_the_schema(llm):
    llm.queue(json.dumps(GOOD))
    reply = ask_json(llm, [{"role": "user", "content": "extract"}], SCHEMA)
    assert reply.value == GOOD
    assert reply.attempts == 1
    [request] = llm.chat_requests
    assert request.response_format["json_schema"]["schema"] == SCHEMA


def test_invalid_answer_is_retried_with_the_problem_fed_back(llm):
    llm.queue('{"facts": [{"text": "A"}]}', "```json\n" + json.dumps(GOOD) + "\n```")
    reply = ask_json(llm, [{"role": "user", "content": "extract"}], SCHEMA)
    assert reply.value == GOOD
    assert reply.attempts == 2
    assert reply.repaired == "fenced"
    first, second = llm.chat_requests
    assert first.json["messages"] == [{"role": "user", "content": "extract"}]
    messages = second.json["messages"]
    assert messages[0] == {"role": "user", "content": "extract"}
    assert messages[1] == {"role": "assistant", "content": '{"facts": [{"text": "A"}]}'}
    assert "missing required property 'sources'" in messages[2]["content"]


def test_feedback_does_not_accumulate_over_retries(llm):
    llm.queue("no", "still no", json.dumps(GOOD))
    ask_json(llm, [{"role": "user", "content": "extract"}], SCHEMA, max_attempts=3)
    third = llm.chat_requests[2].json["messages"]
    assert len(third) == 3
    assert third[1]["content"] == "still no"


def test_check_adds_problems_the_schema_cannot_express(llm):
    llm.queue('{"facts": []}', json.dumps(GOOD))
    reply = ask_json(
        llm,
        [{"role": "user", "content": "extract"}],
        SCHEMA,
        check=lambda v: [] if v["facts"] else ["$.facts: must not be empty"],
    )
    assert reply.attempts == 2
    assert "must not be empty" in llm.chat_requests[1].json["messages"][-1]["content"]


def test_bound_reached_raises_extraction_error_with_excerpt_and_no_key(llm):
    llm.queue(*["I am sorry, I cannot produce JSON today."] * 2)
    with pytest.raises(StructuredOutputError) as info:
        ask_json(llm, [{"role": "user", "content": "x"}], SCHEMA, max_attempts=2, what="test")
    exc = info.value
    assert isinstance(exc, ExtractionError)
    assert exc.attempts == 2 and exc.value is None
    assert "I am sorry, I cannot produce JSON today." in str(exc)
    assert "no JSON value" in str(exc)
    assert len(llm.chat_requests) == 2


def test_cut_off_reply_is_never_accepted(llm):
    text = (
        '{"facts": [{"text": "A", "sources": ["m1"], "importance": 1}, {"text": "B", "sources": ["m'
    )
    full = '{"facts": [{"text": "A", "sources": ["m1"], "importance": 1}]}'
    llm.queue(Reply(text, finish_reason="length"), full)
    reply = ask_json(llm, [{"role": "user", "content": "x"}], SCHEMA)
    assert reply.value == json.loads(full) and reply.attempts == 2
    retry = llm.chat_requests[1].json["messages"][-1]["content"]
    assert "cut off at the length limit" in retry


def test_cut_off_reply_raises_when_asked(llm):
    from lightmem_core.llm.structured import TruncatedReplyError

    text = '{"facts": [{"text": "A", "sources": ["m1"], "importance": 1}, {"text": "B"'
    llm.queue(text)  # no finish_reason: recognised because the repair had to close it
    with pytest.raises(TruncatedReplyError) as info:
        ask_json(llm, [{"role": "user", "content": "x"}], SCHEMA, on_truncated="raise")
    assert info.value.value == {"facts": [{"text": "A", "sources": ["m1"], "importance": 1}]}
    assert len(llm.chat_requests) == 1


def test_transport_errors_are_not_retried_here(llm):
    llm.queue(Fault.http_error(500, "boom"))
    with pytest.raises(Exception, match="500"):
        ask_json(llm, [{"role": "user", "content": "x"}], SCHEMA)
    assert len(llm.chat_requests) == 1
