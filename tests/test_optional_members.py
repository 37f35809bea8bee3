"""The optional members a plugin's backend may have, as the core uses them: ``top_only`` on a
reranker (``TopOnly``) decides how many hits it receives, and ``close`` (``Closeable``) is
called once when the memory closes, on a kind whose Protocol has none."""

from __future__ import annotations

import pytest
from lightmem_hookspecs import hookimpl

TURNS = [
    {"role": "user", "content": f"note {i}: the dog Biscuit ate {i} treats"} for i in range(12)
]


class Recorder:
    """A reranker that keeps the order it is given and notes how many hits it received."""

    def __init__(self, top_only):
        if top_only is not None:
            self.top_only = top_only
        self.received: list[int] = []
        self.closed = 0

    def rerank(self, query, hits, *, limit):
        self.received.append(len(hits))
        return list(hits)[:limit]

    def close(self):
        self.closed += 1


def _memory(ref_host, make_memory, top_only):
    made: list[Recorder] = []

    class Plugin:
        @hookimpl
        def lightmem_register_backends(self, registrar):
            registrar.reranker("recorder", lambda o, c: made.append(Recorder(top_only)) or made[-1])

    ref_host.register(Plugin(), "recorder-plugin")
    mem = make_memory(reranker=["recorder"])
    mem.add(TURNS, user_id="ann")
    return mem, made


@pytest.mark.parametrize(
    ("top_only", "pool"),
    [(True, False), (False, True), (None, True), ("yes", True)],
    ids=["top_only", "declared False", "not declared", "not a bool"],
)
def test_a_top_only_reranker_receives_the_first_limit_hits_only(
    ref_host, make_memory, top_only, pool
):
    mem, made = _memory(ref_host, make_memory, top_only)
    hits = mem.search("Biscuit treats", limit=3, user_id="ann")
    assert len(hits) == 3
    [reranker] = made
    received = reranker.received[-1]
    assert (received > 3) if pool else (received == 3), reranker.received


def test_close_is_called_once_on_a_reranker_that_has_it(ref_host, make_memory):
    mem, made = _memory(ref_host, make_memory, None)
    mem.search("Biscuit", limit=3, user_id="ann")
    [reranker] = made
    assert reranker.closed == 0
    mem.close()
    assert reranker.closed == 1
