"""The online update's model work runs outside the lock a search takes: a search does not wait
for its LLM call, only for its write; a decision about an entry that changed while the model
decided is not applied (nor applied twice), and nothing the add stored is lost. The LLM is the
loopback OpenAI-compatible server, holding its update answer until the test lets it go."""

from __future__ import annotations

import threading

import pytest

pytest.importorskip("lightmem_openai", reason="the openai plugin is not installed")


OLD = {"role": "user", "content": "My favourite colour is blue.", "time_stamp": "2024-01-01T10:00"}
NEW = {"role": "user", "content": "My favourite colour is green.", "time_stamp": "2024-02-01T10:00"}


@pytest.fixture
def gated(gated_memory):
    return gated_memory(update="online", online_update_threshold=0.0)


def _add_in_background(mem, model):
    (old_id,) = mem.add([OLD], user_id="ann").entries_added
    old = mem.get(old_id)
    added: list = []
    adder = threading.Thread(target=lambda: added.append(mem.add([NEW], user_id="ann")))
    adder.start()
    assert model.asked.wait(10), "the online update never asked the model"
    return old, adder, added


def test_a_search_does_not_wait_for_the_online_updates_llm_call(gated):
    mem, model = gated
    old, adder, added = _add_in_background(mem, model)
    found: list = []
    searcher = threading.Thread(target=lambda: found.append(mem.search("favourite colour")))
    searcher.start()
    searcher.join(5)
    assert not searcher.is_alive(), "the search waited for the online update's LLM call"
    assert not model.gate.is_set()  # the update decision is still in flight
    texts = [h.entry.memory for h in found[0]]
    assert any("blue" in t for t in texts) and any("green" in t for t in texts)
    model.gate.set()
    adder.join(10)
    assert not adder.is_alive() and added[0].entries_added
    merged = mem.get(old.id)
    assert merged.memory != old.memory and "green" in merged.memory  # then it was applied
    assert [h["action"].lower() for h in mem.history(old.id)].count("update") == 1


def test_a_decision_about_an_entry_changed_meanwhile_is_not_applied(gated, meanwhile):
    mem, model = gated
    old, adder, added = _add_in_background(mem, model)
    meanwhile.change(mem, old.id)
    model.gate.set()
    adder.join(10)
    assert not adder.is_alive()
    (new_id,) = added[0].entries_added
    assert "green" in mem.get(new_id).memory  # nothing the add stored is lost
    meanwhile.check(mem, old.id)
    model.asked.clear()
