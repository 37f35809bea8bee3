"""The "newer fact first" reordering is the built-in reranker ``newer_first``: configured by the
defaults of a memory without an LLM, shown, removable, reorderable, with language options."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from lightmem_core.errors import ConfigError
from lightmem_core.recency import NewerFirst, NewerFirstOptions
from lightmem_core.testing.conformance.reranker import RerankerConformance

OLD = {"role": "user", "content": "I live in Paris near the river", "time_stamp": "2023-01-05"}
NEW = {"role": "user", "content": "I live in Berlin near the river now", "time_stamp": "2024-06-01"}


class TestNewerFirstConformance(RerankerConformance):
    @pytest.fixture
    def backend(self, ref_host):
        registration = ref_host.registry.get("reranker", "newer_first")
        return registration.factory(NewerFirstOptions(), None)

    def test_the_query_decides_the_order(self, backend):
        pytest.skip(
            "newer_first is not a relevance reranker: it keeps the retrievers' order except "
            "where a newer memory competes with an older one (tested below)"
        )


def _memory(make_memory, **config):
    mem = make_memory(update=None, **config)
    mem.add_memory([OLD], force_extract=True)
    mem.add_memory([NEW], force_extract=True)
    return mem


def _first(mem, query="where do I live near the river"):
    return mem.search(query, limit=2)[0].entry.memory


def test_a_memory_without_an_llm_gets_it_by_default_and_shows_it(make_memory):
    mem = _memory(make_memory)
    assert mem.stats()["chains"]["rerankers"] == ["newer_first"]
    assert "Berlin" in _first(mem)
    hit = mem.search("where do I live near the river", limit=2)[0]
    assert hit.ranks["newer_first"] == 1


def test_a_memory_with_an_llm_does_not_get_it(make_memory):
    mem = make_memory(memory_manager={"model_name": "scripted"})
    assert mem.stats()["chains"]["rerankers"] == []


def test_an_empty_reranker_list_turns_it_off(make_memory):
    mem = _memory(make_memory, reranker=[])
    assert mem.stats()["chains"]["rerankers"] == []
    hits = mem.search("where do I live near the river", limit=2)
    assert all("newer_first" not in h.ranks for h in hits)


def test_it_can_be_placed_in_a_chain_and_given_options(make_memory, ref_host):
    from lightmem_hookspecs import hookimpl

    class Reverse:
        def rerank(self, query, hits, *, limit):
            return list(reversed(hits))[:limit]

    class Plugin:
        @hookimpl
        def lightmem_register_backends(self, registrar):
            registrar.reranker("reverse", lambda o, c: Reverse())

    ref_host.register(Plugin(), "reverse-plugin")
    chain = [{"model_name": "reverse"}, {"model_name": "newer_first"}]
    mem = _memory(make_memory, retrieval={"rerankers": chain})
    assert mem.stats()["chains"]["rerankers"] == ["reverse", "newer_first"]
    assert "Berlin" in _first(mem)


def test_language_options_change_what_competes():
    from lightmem_hookspecs import MemoryEntry, SearchHit

    def hit(ident, text, year, score):
        import datetime as dt

        entry = MemoryEntry(id=ident, memory=text, time_stamp=dt.datetime(year, 1, 1))
        return SearchHit(id=ident, score=score, entry=entry)

    hits = [hit("a", "Ich wohne in Paris", 2020, 1.0), hit("b", "Ich wohne in Berlin", 2024, 0.9)]
    english = NewerFirst()
    assert [h.id for h in english.order("Wo wohne ich?", hits)] == ["b", "a"]  # shares "wohne"
    german = NewerFirst(NewerFirstOptions(past_pattern=r"\b(früher|vorher)\b"))
    assert [h.id for h in german.order("Wo wohnte ich früher?", hits)] == ["a", "b"]
    stop = NewerFirst(NewerFirstOptions(stopwords=["ich", "wohne", "in", "wo"]))
    assert [h.id for h in stop.order("Wo wohne ich?", hits)] == ["a", "b"]  # nothing shared


@pytest.mark.parametrize(
    ("option", "value"), [("past_pattern", "("), ("score_ratio", 2), ("min_word_length", 0)]
)
def test_bad_options_are_refused_with_their_path(make_memory, option, value):
    bad = {"model_name": "newer_first", "configs": {option: value}}
    with pytest.raises(ConfigError, match=rf"\$\.reranker\[0\]\.configs\.{option}"):
        make_memory(reranker=[bad])


def test_config_check_shows_it(tmp_path):
    pytest.importorskip("lightmem_sqlite_index", reason="config check discovers installed plugins")
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps({"memory_dir": str(tmp_path / "m"), "retrieve_strategy": "context"})
    )
    out = subprocess.run(
        [sys.executable, "-m", "lightmem_core.cli", "config", "check", str(config)],
        capture_output=True,
        text=True,
    )
    assert "rerankers: newer_first" in out.stdout, out.stdout + out.stderr
