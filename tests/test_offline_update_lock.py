"""The offline update pass's LLM calls run outside the lock a search takes: a search and an
add do not wait for them, only for its writes; a decision about an entry that changed while
the model decided is not applied (nor applied twice); two passes at once work the queue once.
The LLM is the loopback OpenAI-compatible server, holding its update answer until the test
lets it go."""

from __future__ import annotations

import threading

import pytest

pytest.importorskip("lightmem_openai", reason="the openai plugin is not installed")


OLD = {"role": "user", "content": "My favourite colour is blue.", "time_stamp": "2024-01-01T10:00"}
NEW = {"role": "user", "content": "My favourite colour is green.", "time_stamp": "2024-02-01T10:00"}
OTHER = {"role": "user", "content": "I live in Lisbon.", "time_stamp": "2024-03-01T10:00"}


@pytest.fixture
def gated(gated_memory):
    return gated_memory(update="offline")


def _pass_in_background(mem, model):
    (old_id,) = mem.add([OLD], user_id="ann").entries_added
    (new_id,) = mem.add([NEW], user_id="ann").entries_added
    assert mem.construct_update_queue_all_entries() >= 1
    old = mem.get(old_id)
    done: list = []
    worker = threading.Thread(target=lambda: done.append(mem.offline_update_all_entries(0.0)))
    worker.start()
    assert model.asked.wait(10), "the update pass never asked the model"
    return old, new_id, worker, done


def test_a_search_and_an_add_do_not_wait_for_the_passs_llm_call(gated):
    mem, model = gated
    old, new_id, worker, done = _pass_in_background(mem, model)
    found: list = []
    searcher = threading.Thread(target=lambda: found.append(mem.search("favourite colour")))
    searcher.start()
    searcher.join(5)
    assert not searcher.is_alive(), "the search waited for the update pass's LLM call"
    adder = threading.Thread(target=lambda: found.append(mem.add([OTHER], user_id="bob")))
    adder.start()
    adder.join(5)
    assert not adder.is_alive(), "the add waited for the update pass's LLM call"
    assert not model.gate.is_set()  # the decision is still in flight
    texts = [h.entry.memory for h in found[0]]
    assert any("blue" in t for t in texts) and any("green" in t for t in texts)
    model.gate.set()
    worker.join(10)
    assert not worker.is_alive() and done[0]
    merged = mem.get(old.id)
    assert merged.memory != old.memory and "green" in merged.memory  # then it was applied
    assert [h["action"].lower() for h in mem.history(old.id)].count("update") == 1
    assert "green" in mem.get(new_id).memory


def test_a_decision_about_an_entry_changed_meanwhile_is_not_applied(gated, meanwhile):
    mem, model = gated
    old, new_id, worker, done = _pass_in_background(mem, model)
    meanwhile.change(mem, old.id)
    model.gate.set()
    worker.join(10)
    assert not worker.is_alive() and done == [[]]
    assert "green" in mem.get(new_id).memory
    meanwhile.check(mem, old.id)


def test_two_passes_at_once_ask_the_model_once(gated):
    mem, model = gated
    old, _, worker, done = _pass_in_background(mem, model)
    second: list = []
    other = threading.Thread(target=lambda: second.append(mem.offline_update_all_entries(0.0)))
    other.start()
    other.join(1)
    assert other.is_alive()  # it waits for the first pass, not for the lock a search takes
    model.gate.set()
    worker.join(10)
    other.join(10)
    assert not worker.is_alive() and not other.is_alive()
    assert model.calls == 1 and len(done[0]) == 1 and second == [[]]
    assert [h["action"].lower() for h in mem.history(old.id)].count("update") == 1
