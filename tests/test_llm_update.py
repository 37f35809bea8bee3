"""Update decisions (offline decide_update, online reconcile_fact) over a real loopback server."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from lightmem_hookspecs import MemoryEntry

from lightmem_core.errors import ExtractionError
from lightmem_core.llm.update import (
    RECONCILE_SCHEMA,
    UPDATE_SCHEMA,
    UpdateDecision,
    decide_update,
    reconcile_fact,
)

openai_plugin = pytest.importorskip("lightmem_openai.plugin")

KEY = "sk-test-update-91b0c3d2"
T0 = dt.datetime(2023, 5, 20, 2, 21)

OLD = MemoryEntry(id="e-old", memory="Alice lives in Berlin.", time_stamp=T0)
NEW_1 = MemoryEntry(
    id="e-new1", memory="Alice moved to Munich.", time_stamp=T0 + dt.timedelta(days=30)
)
NEW_2 = MemoryEntry(
    id="e-new2", memory="Alice lives in Berlin with her cat.", time_stamp=T0 + dt.timedelta(days=2)
)
CANDIDATES = [(NEW_1, 0.91), (NEW_2, 0.85)]


def decision(action, new_memory="", replaced_by="", reason="because"):
    return json.dumps(
        {"action": action, "new_memory": new_memory, "replaced_by": replaced_by, "reason": reason}
    )


@pytest.fixture
def llm(openai_server):
    options = openai_plugin.OpenAIOptions(
        api_key=KEY, openai_base_url=openai_server.base_url, max_retries=0, timeout=5.0
    )
    backend = openai_plugin.build(options)
    yield backend
    backend.close()


def prompt_of(request) -> str:
    return request.json["messages"][1]["content"]


# -- offline: decide_update -------------------------------------------------------------------


def test_update_returns_the_merged_text_and_shows_times_and_scores(llm, openai_server):
    merged = "Alice lives in Berlin with her cat."
    openai_server.queue(decision("update", new_memory=merged, reason="adds the cat"))
    result = decide_update(llm, OLD, CANDIDATES)
    assert result == UpdateDecision("update", "e-old", merged, reason="adds the cat")
    [request] = openai_server.chat_requests
    prompt = prompt_of(request)
    assert "[old] 2023-05-20 (Sat) 02:21: Alice lives in Berlin." in prompt
    assert "[n1] 2023-06-19 (Mon) 02:21 (similarity 0.91): Alice moved to Munich." in prompt
    assert "[n2] 2023-05-22 (Mon) 02:21 (similarity 0.85)" in prompt
    sent = request.response_format["json_schema"]["schema"]
    assert sent["properties"]["replaced_by"]["enum"] == ["", "n1", "n2"]
    assert sent["properties"]["action"]["enum"] == ["update", "delete", "ignore"]
    assert {**sent, "properties": {**sent["properties"], "replaced_by": {"type": "string"}}} == (
        UPDATE_SCHEMA
    )


def test_delete_names_the_candidate_that_replaced_the_target(llm, openai_server):
    openai_server.queue(decision("delete", replaced_by="n1", reason="she moved"))
    result = decide_update(llm, OLD, CANDIDATES)
    assert result == UpdateDecision("delete", "e-old", replaced_by="e-new1", reason="she moved")


def test_delete_naming_an_unknown_candidate_keeps_no_replacement(llm, openai_server):
    openai_server.queue(decision("DELETE", replaced_by="n9"))
    result = decide_update(llm, OLD, CANDIDATES)
    assert result.action == "delete" and result.replaced_by is None


def test_ignore(llm, openai_server):
    openai_server.queue(decision("ignore", reason="different facts"))
    assert decide_update(llm, OLD, CANDIDATES) == UpdateDecision(
        "ignore", "e-old", reason="different facts"
    )


def test_no_candidates_means_no_call(llm, openai_server):
    assert decide_update(llm, OLD, []).action == "ignore"
    assert openai_server.chat_requests == []


def test_invalid_action_is_retried_with_feedback(llm, openai_server):
    openai_server.queue(decision("merge"), decision("delete", replaced_by="n2"))
    result = decide_update(llm, OLD, CANDIDATES)
    assert result.action == "delete" and result.replaced_by == "e-new2"
    feedback = openai_server.chat_requests[1].json["messages"][-1]["content"]
    assert '"merge" is not one of "update", "delete", "ignore"' in feedback


def test_update_without_text_is_retried(llm, openai_server):
    openai_server.queue(decision("update"), decision("update", new_memory="Merged."))
    assert decide_update(llm, OLD, CANDIDATES).new_memory == "Merged."
    feedback = openai_server.chat_requests[1].json["messages"][-1]["content"]
    assert "an update needs the merged memory text" in feedback


def test_still_invalid_after_the_bound_falls_back_to_ignore(llm, openai_server):
    openai_server.queue(*[decision("merge")] * 2)
    result = decide_update(llm, OLD, CANDIDATES, max_attempts=2)
    assert result.action == "ignore" and result.target_id == "e-old"
    assert "no valid decision" in result.reason
    assert len(openai_server.chat_requests) == 2


def test_never_json_raises_so_the_entry_waits_for_the_next_pass(llm, openai_server):
    openai_server.queue(*["I think you should update it."] * 2)
    with pytest.raises(ExtractionError, match="update decision for entry e-old") as info:
        decide_update(llm, OLD, CANDIDATES, max_attempts=2)
    assert KEY not in str(info.value)


# -- online: reconcile_fact -------------------------------------------------------------------

S1 = MemoryEntry(id="s-one", memory="Alice lives in Berlin.", time_stamp=T0)
S2 = MemoryEntry(id="s-two", memory="Alice has a cat.", time_stamp=T0)
S3 = MemoryEntry(id="s-three", memory="Alice likes tea.", time_stamp=T0)
NEIGHBOURS = [(S1, 0.93), (S2, 0.88), (S3, 0.81)]


def decisions(*items):
    return json.dumps({"decisions": list(items)})


def item(short, action, new_memory="", reason="r"):
    return {"id": short, "action": action, "new_memory": new_memory, "reason": reason}


def test_reconcile_returns_updates_and_deletes_in_neighbour_order(llm, openai_server):
    openai_server.queue(
        decisions(
            item("s2", "update", "Alice has a cat named Tom."),
            item("s1", "delete", reason="moved"),
            item("s3", "ignore"),
            item("s9", "delete"),
            item("[S1]", "update", "dup"),
        )
    )
    result = reconcile_fact(
        llm,
        "Alice moved to Munich with her cat Tom.",
        NEIGHBOURS,
        fact_time_stamp=T0 + dt.timedelta(days=3),
    )
    assert result == [
        UpdateDecision("delete", "s-one", reason="moved"),
        UpdateDecision("update", "s-two", "Alice has a cat named Tom.", reason="r"),
    ]
    [request] = openai_server.chat_requests
    prompt = prompt_of(request)
    assert "[new] 2023-05-23 (Tue) 02:21: Alice moved to Munich with her cat Tom." in prompt
    assert "[s1] 2023-05-20 (Sat) 02:21 (similarity 0.93): Alice lives in Berlin." in prompt
    sent = request.response_format["json_schema"]["schema"]
    assert sent["properties"]["decisions"]["items"]["properties"]["id"]["enum"] == [
        "s1",
        "s2",
        "s3",
    ]
    assert sent["required"] == RECONCILE_SCHEMA["required"] == ["decisions"]


def test_reconcile_with_nothing_to_change(llm, openai_server):
    openai_server.queue(decisions())
    assert reconcile_fact(llm, "Alice likes coffee.", NEIGHBOURS) == []


def test_reconcile_without_neighbours_makes_no_call(llm, openai_server):
    assert reconcile_fact(llm, "Alice likes coffee.", []) == []
    assert openai_server.chat_requests == []


def test_reconcile_invalid_item_is_retried_then_valid_items_kept(llm, openai_server):
    bad = decisions(item("s1", "delete"), item("s2", "merge"))
    openai_server.queue(bad, bad)
    result = reconcile_fact(llm, "Alice moved to Munich.", NEIGHBOURS, max_attempts=2)
    assert result == [UpdateDecision("delete", "s-one", reason="r")]
    feedback = openai_server.chat_requests[1].json["messages"][-1]["content"]
    assert "$.decisions[1].action" in feedback


def test_reconcile_update_without_text_is_retried(llm, openai_server):
    openai_server.queue(
        decisions(item("s1", "update")), decisions(item("s1", "update", "Merged text."))
    )
    result = reconcile_fact(llm, "Alice moved.", NEIGHBOURS)
    assert result == [UpdateDecision("update", "s-one", "Merged text.", reason="r")]


def test_reconcile_never_json_raises(llm, openai_server):
    openai_server.queue("nope", "nope")
    with pytest.raises(ExtractionError, match="online update"):
        reconcile_fact(llm, "Alice moved.", NEIGHBOURS, max_attempts=2)
