"""The configuration selects the chains: retrievers with weights, fusion, rerankers in order, and
the hook plugins a memory runs — with third-party plugins found through real entry points."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import attrs
import pytest
from lightmem_hookspecs import SearchHit, hookimpl

from lightmem_core import BackendNotFoundError, ConfigError
from lightmem_core.errors import BackendError
from lightmem_core.testing.distributions import Distribution, install_distributions
from lightmem_core.testing.reference import words

# -- third-party distributions, each depending on lightmem-hookspecs only ----------------------

RETRIEVER = '''
import attrs
from lightmem_hookspecs import hookimpl

@attrs.frozen
class TermOptions:
    term: str

class TermRetriever:
    """Finds the entries that contain one fixed word, whatever the query."""
    def __init__(self, term):
        self.term, self.records = term, {}
    def index(self, records):
        for r in records:
            self.records[r.id] = r
    def search(self, query, *, limit, filter=None):
        hits = [(r.id, 1.0) for r in self.records.values()
                if self.term in r.text.lower().split()
                and (filter is None or filter.matches(r.id, r.payload))]
        return hits[:limit]
    def delete(self, ids):
        for i in ids:
            self.records.pop(i, None)
    def count(self):
        return len(self.records)
    def close(self):
        pass

@hookimpl
def lightmem_register_backends(registrar):
    registrar.context_retriever("term", lambda o, c: TermRetriever(o.term), options=TermOptions)
'''

RERANKER = '''
import attrs
from lightmem_hookspecs import hookimpl

@attrs.frozen
class PromoteOptions:
    term: str

class Promote:
    """Moves the hits whose memory contains ``term`` to the front, keeping the rest in order."""
    def __init__(self, term):
        self.term = term
    def rerank(self, query, hits, *, limit):
        first = [h for h in hits if self.term in h.entry.memory.lower()]
        rest = [h for h in hits if self.term not in h.entry.memory.lower()]
        return (first + rest)[:limit]

@hookimpl
def lightmem_register_backends(registrar):
    registrar.reranker("promote", lambda o, c: Promote(o.term), options=PromoteOptions)
'''

HOOKS = """
import os
from lightmem_hookspecs import hookimpl

def _log(*item):
    with open(os.environ["HOOK_LOG"], "a") as f:
        f.write(" ".join(str(x) for x in item) + "\\n")

class _Base:
    name = ""
    @hookimpl
    def lightmem_messages_normalized(self, messages, context):
        _log("normalized", self.name, context.plugin, context.options.get("tag"),
             context.scope.user_id, os.path.basename(context.memory_dir))
    @hookimpl(wrapper=True)
    def lightmem_run_operation(self, operation):
        if operation.name == "add_memory":
            _log("enter", self.name)
        result = yield
        if operation.name == "add_memory":
            _log("leave", self.name)
        return result

class One(_Base):
    name = "one"

class Two(_Base):
    name = "two"

class Unnamed(_Base):
    name = "unnamed"

one, two, unnamed = One(), Two(), Unnamed()
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The third-party plugins pip-installed into a folder of their own."""
    hooks = {
        "hook-one": "lm_hooks:one",
        "hook-two": "lm_hooks:two",
        "hook-unnamed": "lm_hooks:unnamed",
    }
    return install_distributions(
        tmp_path_factory.mktemp("third-party"),
        [
            Distribution("lm-term", "lm_term", RETRIEVER),
            Distribution("lm-promote", "lm_promote", RERANKER),
            Distribution("lm-hooks", "lm_hooks", HOOKS, entry_points=hooks),
        ],
    )


SCRIPT = """
import json, sys
from lightmem_core import LightMemory
from lightmem_core.plugins import PluginHost
from lightmem_core.testing.reference import ReferencePlugin, reference_config

host = PluginHost(only=["lm-term", "lm-promote", "hook-one", "hook-two", "hook-unnamed",
                        "lightmem-core"])
host.register(ReferencePlugin(), "reference")
overrides = json.loads(sys.argv[2])
config = reference_config(sys.argv[1], **overrides)
for key in overrides.get("_drop", []):
    config.pop(key)
config.pop("_drop", None)
with LightMemory(config, host=host) as mem:
    mem.add([{"role": "user", "content": c} for c in
             ["apple pie recipe", "banana bread recipe", "cherry tart for dessert"]],
            user_id="ann")
    hits = mem.search("apple recipe", limit=3, user_id="ann")
    print(json.dumps([[h.entry.memory, h.scores, h.ranks] for h in hits]))
"""


def _search(site: Path, tmp_path: Path, name: str, **overrides) -> list:
    env = {**os.environ, "PYTHONPATH": str(site), "HOOK_LOG": str(tmp_path / "hooks.log")}
    env.pop("LIGHTMEM_PLUGINS", None)
    env.pop("LIGHTMEM_DISABLE_PLUGIN_AUTOLOAD", None)
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / name), json.dumps(overrides)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def _chain(term_weight: float) -> dict:
    return {
        "_drop": ["embedding_retriever", "context_retriever"],
        "retrieval": {
            "retrievers": [
                {"kind": "embedding_retriever", "model_name": "exact"},
                {"kind": "context_retriever", "model_name": "keyword"},
                {
                    "kind": "context_retriever",
                    "model_name": "term",
                    "configs": {"term": "cherry"},
                    "weight": term_weight,
                },
            ]
        },
    }


def test_third_party_retriever_joins_hybrid_retrieval_with_its_weight(site, tmp_path):
    heavy = _search(site, tmp_path, "heavy", **_chain(10.0))
    assert heavy[0][0] == "cherry tart for dessert"
    assert set(heavy[0][1]) == {"embedding", "context", "term"}
    assert heavy[0][2]["term"] == 1
    light = _search(site, tmp_path, "light", **_chain(0.0))
    assert light[0][0] != "cherry tart for dessert"  # weight 0: the retriever counts for nothing
    assert "term" in {k for hit in light for k in hit[1]}  # ... though it still ran


def _rerankers(*terms: str) -> dict:
    return {
        "retrieval": {
            "rerankers": [{"model_name": "promote", "configs": {"term": t}} for t in terms]
        }
    }


def test_two_third_party_rerankers_run_in_the_configured_order(site, tmp_path):
    banana_then_cherry = _search(site, tmp_path, "bc", **_rerankers("banana", "cherry"))
    cherry_then_banana = _search(site, tmp_path, "cb", **_rerankers("cherry", "banana"))
    # the last reranker has the last word: reversing the order reverses the effect
    assert banana_then_cherry[0][0] == "cherry tart for dessert"
    assert cherry_then_banana[0][0] == "banana bread recipe"
    assert banana_then_cherry[0][2]["promote"] == 1


def test_only_named_hook_plugins_run_in_the_configured_order(site, tmp_path):
    _search(
        site,
        tmp_path,
        "hooked",
        hooks=[{"plugin": "hook-two", "options": {"tag": "B"}}, "hook-one"],
    )
    lines = (tmp_path / "hooks.log").read_text().splitlines()
    assert lines == [
        "enter two",
        "enter one",
        "normalized two hook-two B ann hooked",
        "normalized one hook-one None ann hooked",
        "leave one",
        "leave two",
    ]


def test_installed_hook_plugins_do_not_run_unless_named(site, tmp_path):
    _search(site, tmp_path, "plain")
    assert not (tmp_path / "hooks.log").exists()
    _search(site, tmp_path, "every", hooks="all")
    ran = {line.split()[1] for line in (tmp_path / "hooks.log").read_text().splitlines()}
    assert ran == {"one", "two", "unnamed"}


# -- in-process checks on the reference backends -----------------------------------------------


class TermRetriever:
    def __init__(self, term: str) -> None:
        self.term, self.records = term, {}

    def index(self, records):
        self.records.update({r.id: r for r in records})

    def search(self, query, *, limit, filter=None):
        found = [r.id for r in self.records.values() if self.term in words(r.text)]
        return [(i, 2.0) for i in found][:limit]

    def delete(self, ids):
        for i in ids:
            self.records.pop(i, None)

    def count(self):
        return len(self.records)

    def close(self):
        pass


class Relator:
    """A hook plugin that states relations the way an extraction call would."""

    RELATIONS: ClassVar[dict[str, tuple[str, str, str]]] = {
        "Anna's best friend is Ben": ("Anna", "friend", "Ben"),
        "Ben lives in Porto": ("Ben", "lives in", "Porto"),
    }

    @hookimpl
    def lightmem_batch_extracted(self, entries):
        for i, e in enumerate(entries):
            triple = self.RELATIONS.get(e.memory)
            if triple:
                relation = dict(zip(("subject", "relation", "object"), triple, strict=True))
                entries[i] = attrs.evolve(e, metadata={**e.metadata, "relations": [relation]})


@pytest.fixture
def term_plugin(ref_host):
    class P:
        @hookimpl
        def lightmem_register_backends(self, registrar):
            registrar.context_retriever("term-cherry", lambda o, c: TermRetriever("cherry"))

    ref_host.register(P(), "test-plugin")
    ref_host.register(Relator(), "relator")


def test_graph_memory_is_built_indexed_and_searched(term_plugin, make_memory):
    mem = make_memory(graph_mem=True, graph_memory={"model_name": "memory"}, hooks=["relator"])
    mem.add([{"role": "user", "content": c} for c in Relator.RELATIONS], user_id="u")
    graph = mem.backends.graphs()[0]
    by_text = {e.memory: e.id for e in mem.get_all(user_id="u")}
    assert graph.entry_ids() == set(by_text.values())
    # two hops from Anna reach where her friend lives; the lexical index alone misses it
    assert mem.search("friend of Anna", strategy="context", user_id="u")[0].entry.memory != (
        "Ben lives in Porto"
    )
    hits = {h.entry.memory: h for h in mem.search("friend of Anna", user_id="u")}
    assert "graph" in hits["Ben lives in Porto"].scores
    mem.delete(by_text["Ben lives in Porto"])
    assert graph.entry_ids() == {by_text["Anna's best friend is Ben"]}


def test_graph_memory_block_is_validated_even_when_graph_mem_is_off(make_memory):
    with pytest.raises(BackendNotFoundError, match=r"\$\.graph_memory\.model_name"):
        make_memory(graph_mem=False, graph_memory={"model_name": "no-such-graph"})


def test_graph_memory_is_not_built_when_graph_mem_is_off(make_memory):
    mem = make_memory(graph_mem=False, graph_memory={"model_name": "memory"})
    mem.add([{"role": "user", "content": "Anna lives in Lisbon"}])
    assert mem.backends.graphs() == []
    assert "graph_memory" not in mem.stats()["backends"]


def test_weighted_fusion_and_per_retriever_scores(term_plugin, make_memory):
    mem = make_memory(
        embedding_retriever=None,
        context_retriever=None,
        retrieval={
            "retrievers": [
                {"kind": "embedding_retriever", "model_name": "exact", "weight": 1.0},
                {"kind": "context_retriever", "model_name": "term-cherry", "weight": 3.0},
            ],
            "fusion": {"method": "weighted"},
            "segments": {"weight": 0},  # the fused scores as they are (one segment here)
        },
    )
    mem.add([{"role": "user", "content": c} for c in ("apple pie", "cherry pie", "plum jam")])
    hits = mem.search("apple pie", limit=3)
    assert hits[0].entry.memory == "cherry pie"  # 3 x 1.0 beats the best vector match
    assert hits[0].score == pytest.approx(3.0 + _norm(hits, hits[0]))
    assert set(hits[0].scores) == {"embedding", "context"}


def _norm(hits, hit):
    values = [h.scores["embedding"] for h in hits if "embedding" in h.scores]
    low, high = min(values), max(values)
    return (hit.scores["embedding"] - low) / (high - low)


def test_strategy_picks_chain_elements(make_memory):
    mem = make_memory()
    mem.add([{"role": "user", "content": "cherry pie"}])
    assert set(mem.search("cherry", strategy="embedding")[0].scores) == {"embedding"}
    assert set(mem.search("cherry", strategy="context")[0].scores) == {"context"}
    assert set(mem.search("cherry")[0].scores) == {"embedding", "context"}


def test_chain_and_shorthand_keys_conflict(make_memory):
    with pytest.raises(ConfigError, match=r"\$\.embedding_retriever: the retrieval chain"):
        make_memory(
            retrieval={"retrievers": [{"kind": "context_retriever", "model_name": "keyword"}]}
        )


def test_chain_rejects_a_kind_that_cannot_search(make_memory):
    with pytest.raises(ConfigError, match=r"retrievers\[0\]\.kind: 'reranker' cannot search"):
        make_memory(
            embedding_retriever=None,
            context_retriever=None,
            retrieval={"retrievers": [{"kind": "reranker", "model_name": "keyword"}]},
        )


def test_rrf_k_must_be_positive(make_memory):
    with pytest.raises(ConfigError, match="rrf_k: must be > 0"):
        make_memory(hybrid_weights={"rrf_k": 0})


def test_duplicate_backend_name_fails_only_configurations_that_select_it(ref_host, make_memory):
    class A:
        @hookimpl
        def lightmem_register_backends(self, registrar):
            registrar.reranker("twin", lambda o, c: None)

    class B:
        @hookimpl
        def lightmem_register_backends(self, registrar):
            registrar.reranker("TWIN", lambda o, c: None)

    ref_host.register(A(), "plugin-a", distribution="dist-a")
    ref_host.register(B(), "plugin-b", distribution="dist-b")
    make_memory()  # does not select it: fine
    with pytest.raises(ConfigError, match=r"\$\.reranker\.model_name: .* 2 plugins") as err:
        make_memory(reranker={"model_name": "twin"})
    assert "'plugin-a' (distribution dist-a)" in str(err.value)
    assert "'plugin-b' (distribution dist-b)" in str(err.value)


def test_close_closes_the_llm_client_and_the_embedder(ref_host, make_memory):
    closed = []

    class Embedder:
        model_name, dimension = "closing", 4

        def embed(self, texts):
            return [[1.0, 0.0, 0.0, 0.0] for _ in texts]

        def close(self):
            closed.append("embedder")

    class LLM:
        model_name = "closing-llm"

        def complete(self, messages, *, json_schema=None, max_tokens=None):
            raise AssertionError("not called")

        def close(self):
            closed.append("llm")

    class P:
        @hookimpl
        def lightmem_register_backends(self, registrar):
            registrar.text_embedder("closing", lambda o, c: Embedder())
            registrar.memory_manager("closing-llm", lambda o, c: LLM())

    ref_host.register(P(), "closing")
    mem = make_memory(
        text_embedder={"model_name": "closing"}, memory_manager={"model_name": "closing-llm"}
    )
    assert mem.llm is not None and mem.embedder is not None  # built
    mem.close()
    assert sorted(closed) == ["embedder", "llm"]


def test_unknown_hook_plugin_is_a_config_error(make_memory):
    with pytest.raises(ConfigError, match=r"\$\.hooks\[0\]\.plugin: no loaded plugin named"):
        make_memory(hooks=["no-such-plugin"])


class _NaNReranker:
    def rerank(self, query, hits, *, limit):
        return [attrs.evolve(h, score=float("nan")) for h in hits][:limit]


class _PathDropper:
    def rerank(self, query, hits, *, limit):
        return [
            SearchHit(id=h.id, score=h.score, entry=h.entry, scores=h.scores, ranks=h.ranks)
            for h in hits
        ][:limit]


@pytest.mark.parametrize(
    ("name", "factory", "message"),
    [
        ("nan-scores", _NaNReranker, r"'nan-scores' gave hit .* the score nan"),
        ("drops-paths", _PathDropper, r"'drops-paths' returned hit .* without paths\['graph'\]"),
    ],
)
def test_the_core_refuses_a_reranker_that_breaks_its_contract(
    term_plugin, ref_host, make_memory, name, factory, message
):
    class Plugin:
        @hookimpl
        def lightmem_register_backends(self, registrar):
            registrar.reranker(name, lambda o, c: factory())

    ref_host.register(Plugin(), name)
    mem = make_memory(
        graph_mem=True,
        graph_memory={"model_name": "memory"},
        hooks=["relator"],
        reranker={"model_name": name},
    )
    mem.add([{"role": "user", "content": c} for c in Relator.RELATIONS], user_id="u")
    with pytest.raises(BackendError, match=message):
        mem.search("friend of Anna", user_id="u")


def test_a_backend_named_alone_is_a_backend_without_options(make_memory):
    mem = make_memory(reranker="newer_first")
    assert mem.config.rerankers()[0][1].model_name == "newer_first"
    with pytest.raises(ConfigError, match=r"\$\.reranker: expected a backend name or"):
        make_memory(reranker=3)
    with pytest.raises(ConfigError, match=r"\$\.reranker: unknown key\(s\) bad"):
        make_memory(reranker={"model_name": "newer_first", "bad": 1})
    with pytest.raises(ConfigError, match=r"\$\.hooks\[0\]: unknown key\(s\) bad"):
        make_memory(hooks=[{"plugin": "x", "bad": 1}])


def test_retriever_names_given_are_kept_and_must_differ(make_memory):
    chain = [
        {"kind": "context_retriever", "model_name": "keyword"},
        {"kind": "context_retriever", "model_name": "keyword", "name": "context"},
        {"kind": "embedding_retriever", "model_name": "exact"},
    ]
    mem = make_memory(
        context_retriever=None, embedding_retriever=None, retrieval={"retrievers": chain}
    )
    # the unnamed first element does not take the name the second one was given
    assert [e.label for e in mem.config.retrievers()] == ["keyword", "context", "embedding"]
    twice = [*chain[1:], {**chain[1], "name": "context"}]
    with pytest.raises(ConfigError, match=r"retrievers\[2\]\.name: 'context' is already the"):
        make_memory(
            context_retriever=None, embedding_retriever=None, retrieval={"retrievers": twice}
        )


def test_a_reranker_that_records_its_own_score_has_one_key(ref_host, make_memory):
    class Boost:
        def rerank(self, query, hits, *, limit):
            out = []
            for hit in hits:
                boosted = hit.score + (1.0 if "dog" in hit.entry.memory else 0.0)
                scores = {**hit.scores, "Keyword_Boost": boosted}
                out.append(attrs.evolve(hit, score=boosted, scores=scores))
            return sorted(out, key=lambda h: -h.score)[:limit]

    class Plugin:
        @hookimpl
        def lightmem_register_backends(self, registrar):
            registrar.reranker("keyword-boost", lambda o, c: Boost())

    ref_host.register(Plugin(), "boost")
    mem = make_memory(reranker="keyword-boost")
    mem.add_memory(
        [{"role": "user", "content": "My dog is called Rex."}],
        force_segment=True,
        force_extract=True,
    )
    [hit] = mem.search("dog", limit=1)
    boost_keys = [k for k in hit.scores if k.lower().replace("_", "-") == "keyword-boost"]
    assert boost_keys == ["keyword-boost"], hit.scores
    assert hit.scores["keyword-boost"] == hit.score
