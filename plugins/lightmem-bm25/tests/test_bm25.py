"""BM25-specific behaviour: ranking, tiny memories, lazy rebuilds, snapshots, options, the core."""

from __future__ import annotations

import json
import subprocess
import sys

import lightmem_bm25.plugin as bm25_plugin
import pytest
from lightmem_bm25.index import BM25Retriever
from lightmem_bm25.plugin import BM25Options, build_bm25
from lightmem_hookspecs import BackendContext, IndexRecord, SearchFilter

TURNS = [
    IndexRecord("t1", "My dog is called Rex and he loves the beach", {"speaker": "Ann"}),
    IndexRecord("t2", "The stock market fell sharply today", {"speaker": "Ben"}),
    IndexRecord("t3", "I went hiking in the Alps last summer", {"speaker": "Ann"}),
    IndexRecord("t4", "Rex chewed my new shoes again", {"speaker": "Ann"}),
    IndexRecord("t5", "We painted the kitchen blue over the weekend", {"speaker": "Ben"}),
    IndexRecord("t6", "Our cat hides under the bed when it storms", {"speaker": "Ben"}),
]


def make(**options) -> BM25Retriever:
    index = build_bm25(BM25Options(**options), BackendContext(memory_dir="unused"))
    index.index(TURNS)
    return index


def ids(hits):
    return [i for i, _ in hits]


def test_question_finds_its_answer():
    index = make()
    assert ids(index.search("What is my dog's name?", limit=1)) == ["t1"]
    assert ids(index.search("When did Ann go hiking?", limit=1)) == ["t3"]
    assert ids(index.search("what did they paint", limit=1)) == ["t5"]


def test_rarer_term_weighs_more():
    index = make()
    # "rex" is in two turns, "beach" in one: the turn with both wins, then the other "rex" turn.
    assert ids(index.search("rex beach", limit=3)) == ["t1", "t4"]


def test_stemming_is_what_connects_inflections():
    assert ids(make(use_stemming=True).search("hikes", limit=3)) == ["t3"]
    assert make(use_stemming=False).search("hikes", limit=3) == []


def test_stopwords_alone_match_nothing_with_stopwords_on():
    assert make().search("the and of my", limit=5) == []
    assert make(stopwords=False).search("the", limit=10)


@pytest.mark.parametrize("variant", ["okapi", "plus", "l"])
def test_one_and_two_record_memories_still_answer(variant):
    # Classic Okapi IDF is <= 0 here; every variant must still return the match, positive.
    index = BM25Retriever(variant=variant)
    index.index([TURNS[0]])
    hits = index.search("dog", limit=5)
    assert ids(hits) == ["t1"] and hits[0][1] > 0
    index.index([TURNS[1]])
    assert ids(index.search("dog", limit=5)) == ["t1"]
    assert ids(index.search("dog market", limit=5)) in (["t1", "t2"], ["t2", "t1"])


@pytest.mark.parametrize("variant", ["plus", "l"])
def test_variants_without_a_match_return_nothing(variant):
    # BM25+ gives every record a positive score; only records sharing a term may come back.
    assert make(variant=variant).search("volcano", limit=5) == []


def test_k1_and_b_change_scores():
    base = make().search("rex", limit=2)
    assert make(k1=0.5).search("rex", limit=2) != base
    assert make(b=0.0).search("rex", limit=2) != base


def test_ties_break_by_id():
    index = BM25Retriever()
    index.index([IndexRecord(i, "same words here", {}) for i in ("c", "a", "b")])
    assert ids(index.search("words", limit=3)) == ["a", "b", "c"]


def test_rebuild_is_lazy_and_happens_once_per_change(monkeypatch):
    index = BM25Retriever()
    rebuilds = []
    original = index._rebuild
    monkeypatch.setattr(index, "_rebuild", lambda: (rebuilds.append(1), original()))
    for record in TURNS:
        index.index([record])
    index.delete(["t6"])
    assert rebuilds == []
    index.search("rex", limit=3)
    index.search("dog", limit=3)
    index.search("cat", limit=3, filter=SearchFilter(speaker="Ben"))
    assert len(rebuilds) == 1
    index.index([IndexRecord("t7", "Rex learnt to sit", {})])
    assert set(ids(index.search("rex", limit=5))) == {"t1", "t4", "t7"}
    assert len(rebuilds) == 2


def test_index_of_only_empty_texts():
    index = BM25Retriever()
    index.index([IndexRecord("e1", "", {}), IndexRecord("e2", "?!", {})])
    assert index.count() == 2
    assert index.search("anything", limit=5) == []


def test_limit_zero_or_negative():
    assert make().search("rex", limit=0) == []
    assert make().search("rex", limit=-1) == []


# -- snapshot (on_disk) ----------------------------------------------------------------------


def on_disk(tmp_path, **options):
    return build_bm25(
        BM25Options(on_disk=True, **options), BackendContext(memory_dir=str(tmp_path))
    )


def test_snapshot_survives_close_and_reopen(tmp_path):
    index = on_disk(tmp_path)
    index.index(TURNS)
    index.close()
    snapshot = tmp_path / "bm25_index.json"
    assert json.loads(snapshot.read_text())["format"] == "lightmem-bm25/1"
    again = on_disk(tmp_path)
    assert again.count() == len(TURNS)
    assert ids(again.search("dog", limit=1, filter=SearchFilter(speaker="Ann"))) == ["t1"]


def test_snapshot_is_dropped_on_first_change_so_a_crash_cannot_leave_it_stale(tmp_path):
    index = on_disk(tmp_path)
    index.index(TURNS)
    index.close()
    again = on_disk(tmp_path)
    again.delete(["t1"])
    assert not (tmp_path / "bm25_index.json").exists()
    # "Crash" now (no close): the next start finds no snapshot, count() is 0, the core rebuilds.
    assert on_disk(tmp_path).count() == 0


def test_unreadable_snapshot_starts_empty(tmp_path, caplog):
    (tmp_path / "bm25_index.json").write_text("{not json")
    index = on_disk(tmp_path)
    assert index.count() == 0
    assert "unreadable" in caplog.text
    index.index(TURNS[:1])
    index.close()
    assert on_disk(tmp_path).count() == 1


def test_index_path_absolute_and_relative(tmp_path):
    target = tmp_path / "elsewhere" / "bm25.json"
    index = on_disk(tmp_path / "mem", index_path=str(target))
    index.index(TURNS)
    index.close()
    assert target.exists()
    index = on_disk(tmp_path / "mem", index_path="sub/bm25.json")
    index.index(TURNS)
    index.close()
    assert (tmp_path / "mem" / "sub" / "bm25.json").exists()


def test_no_file_without_on_disk(tmp_path):
    index = build_bm25(BM25Options(), BackendContext(memory_dir=str(tmp_path)))
    index.index(TURNS)
    index.close()
    assert list(tmp_path.iterdir()) == []


# -- options through the core's strict configuration -------------------------------------------


@pytest.fixture
def host(lightmem_host):
    lightmem_host.register(bm25_plugin, "bm25")
    return lightmem_host


def resolve(host, configs):
    from lightmem_core.config import BackendSpec, resolve_backend

    return resolve_backend(
        host, "$.context_retriever", "context_retriever", BackendSpec("BM25", configs)
    )


def test_original_lightmem_options_are_accepted(host):
    registration, options = resolve(
        host,
        {"k1": 1.2, "b": 0.5, "use_stemming": False, "lowercase": True, "tokenizer": None},
    )
    assert registration.name == "BM25"
    assert options == BM25Options(k1=1.2, b=0.5, use_stemming=False)


@pytest.mark.parametrize(
    ("configs", "message"),
    [
        ({"k1": 0}, "$.context_retriever.configs.k1: must be > 0"),
        ({"b": 1.5}, "$.context_retriever.configs.b: must be between 0 and 1"),
        ({"variant": "bm42"}, "$.context_retriever.configs.variant"),
        ({"tokenizer": "nltk"}, "$.context_retriever.configs.tokenizer"),
        ({"stem": True}, "unknown key(s) stem"),
        ({"k1": "1.5"}, "$.context_retriever.configs.k1"),
        ({"use_stemming": 1}, "$.context_retriever.configs.use_stemming"),
        ({"index_path": " "}, "$.context_retriever.configs.index_path: must not be empty"),
    ],
)
def test_bad_options_are_refused_with_a_path(host, configs, message):
    from lightmem_core.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        resolve(host, configs)
    assert message in str(info.value)


def test_lowercase_name_selects_it_too(host):
    from lightmem_core.config import BackendSpec, resolve_backend

    registration, _ = resolve_backend(host, "$.x", "context_retriever", BackendSpec("bm25"))
    assert registration.name == "BM25"


def test_plugin_module_imports_no_heavy_library():
    code = (
        "import sys, lightmem_bm25.plugin\n"
        "heavy = {'rank_bm25', 'numpy', 'lightmem_bm25.index'} & set(sys.modules)\n"
        "print(sorted(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- inside LightMemory --------------------------------------------------------------------------

DOG = [
    {"role": "user", "content": "My dog is called Biscuit", "time_stamp": "2024-03-02T09:15:00"},
    {"role": "user", "content": "I work as a data engineer in Lisbon", "time_stamp": "2024-03-09"},
    {"role": "user", "content": "I went hiking near Sintra", "time_stamp": "2024-03-10"},
]


def test_context_retrieval_in_lightmemory_survives_a_restart(tmp_path, host):
    import lightmem_core.builtin as builtin
    from lightmem_core import LightMemory
    from lightmem_core.testing.reference import ReferencePlugin, reference_config

    host.register(builtin, "lightmem-core")
    host.register(ReferencePlugin(), "reference")
    config = reference_config(
        tmp_path / "mem", context_retriever={"model_name": "BM25"}, retrieve_strategy="context"
    )
    with LightMemory.from_config(config, host=host) as mem:
        mem.add_memory(DOG, force_segment=True, force_extract=True)
        assert mem.retrieve("what is my dog called", limit=1)[0].endswith(
            "My dog is called Biscuit"
        )
    # A new process: the in-memory index starts empty and is rebuilt from the record store.
    with LightMemory.from_config(config, host=host) as mem:
        assert mem.retrieve("where did I go hiking", limit=1)[0].endswith(
            "I went hiking near Sintra"
        )
        assert mem.text_index.count() == 3
