"""Tenants do not wait for each other: adds of different scopes extract side by side (up to
``llm_concurrency`` LLM calls), adds of one scope stay one at a time; an erase waits for the
extractions in flight. The LLM is the loopback OpenAI-compatible server, answering slowly."""

from __future__ import annotations

import re
import threading
import time

import pytest

pytest.importorskip("lightmem_openai", reason="the openai plugin is not installed")

from lightmem_core.eval.economy import ScriptedResponder

_TENANT = re.compile(r"tenant(\d+)")


class SlowModel:
    """The scripted model, answering after ``delay`` seconds; records who was in flight."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.inner = ScriptedResponder()
        self.lock = threading.Lock()
        self.in_flight: list[str] = []
        self.most = 0
        self.most_per_tenant = 0
        self.order: list[str] = []

    def __call__(self, body):
        text = str(body)
        tenant = ",".join(sorted(set(_TENANT.findall(text)))) or "?"
        with self.lock:
            self.in_flight.append(tenant)
            self.most = max(self.most, len(self.in_flight))
            self.most_per_tenant = max(self.most_per_tenant, self.in_flight.count(tenant))
            self.order += re.findall(r"step (\d+) of tenant\d+", text)
        try:
            time.sleep(self.delay)
            return self.inner(body)
        finally:
            with self.lock:
                self.in_flight.remove(tenant)


@pytest.fixture
def slow_memory(loopback_memory):
    def make(delay: float, **options):
        model = SlowModel(delay)
        return loopback_memory(model, **options), model

    return make


def _add(mem, tenant: int, step: int = 0):
    return mem.add(
        [{"role": "user", "content": f"step {step} of tenant{tenant}: I like colour {step}"}],
        user_id=f"tenant{tenant}",
    )


def test_tenants_extract_side_by_side_up_to_llm_concurrency(slow_memory):
    mem, model = slow_memory(0.4, llm_concurrency=3)
    with mem:
        threads = [threading.Thread(target=_add, args=(mem, t)) for t in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert model.most == 3  # never more than llm_concurrency, and not one at a time
        for t in range(8):
            assert len(mem.get_all(user_id=f"tenant{t}")) == 1


def test_adds_of_one_scope_stay_one_at_a_time(slow_memory):
    mem, model = slow_memory(0.2, llm_concurrency=8)
    with mem:
        threads = [threading.Thread(target=_add, args=(mem, 1, step)) for step in range(4)]
        threads += [threading.Thread(target=_add, args=(mem, 2, step)) for step in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert model.most_per_tenant == 1
        assert model.most >= 2  # the two tenants overlapped
        for tenant in (1, 2):
            texts = sorted(e.memory for e in mem.get_all(user_id=f"tenant{tenant}"))
            assert len(texts) == 4


def test_an_erase_waits_for_the_extraction_in_flight(slow_memory):
    mem, model = slow_memory(0.5)
    with mem:
        adding = threading.Thread(target=_add, args=(mem, 5))
        adding.start()
        while not model.in_flight:
            time.sleep(0.01)
        receipt = mem.erase(user_id="tenant5")  # the extraction is in flight now
        adding.join()
        # The erase went after the add had committed: it removed the add's entry, and nothing
        # of the tenant was written back afterwards.
        assert receipt.entries == 1 and receipt.messages == 1
        assert mem.get_all(user_id="tenant5") == []
        assert mem.store.journal(None) == []


def test_the_gate_lets_shared_holders_in_while_an_exclusive_one_waits():
    """An add (shared) waiting for a batch that another thread must still take the gate for
    (shared) must not deadlock with an erase waiting for the gate (exclusive)."""
    from lightmem_core.pipeline.concurrency import SharedGate

    gate = SharedGate()
    first_in = threading.Event()
    second_done = threading.Event()
    erased = threading.Event()

    def add():
        with gate.shared():
            first_in.set()
            assert second_done.wait(5), "the second shared holder never got in"

    def erase():
        first_in.wait()
        with gate.exclusive():
            assert second_done.is_set()
            erased.set()

    def retry():
        first_in.wait()
        time.sleep(0.1)  # the erase is waiting by now
        with gate.shared():
            second_done.set()

    threads = [threading.Thread(target=f) for f in (add, erase, retry)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert erased.is_set()
