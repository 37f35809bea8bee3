"""Conformance suite for ``graph_memory`` backends (networkx, FalkorDB, Neo4j, Kùzu...).

Subclass :class:`GraphMemoryConformance` in your plugin's tests and provide a factory::

    import pytest
    from lightmem_core.testing.conformance.graph_memory import GraphMemoryConformance

    class TestMyGraph(GraphMemoryConformance):
        persistent = True              # False: data lives only as long as the instance

        @pytest.fixture
        def make_backend(self, tmp_path):
            return lambda: MyGraph(path=tmp_path / "graph")

``make_backend`` (required, function scope) returns a NEW backend each call; within one test
every call addresses the same storage, and each test starts from empty storage. The suite
closes what it made; ``close()`` must be safe to call twice. ``persistent`` (default ``True``):
whether data survives ``close()`` and a new instance (the reopen tests are skipped otherwise).

What is checked, against the reference semantics in ``lightmem_hookspecs.graph``:

- the object is a ``GraphMemory``; ``index`` replaces what an entry had, records entries without
  relations, refuses a relation whose entry is not in ``entry_ids``; ``delete`` forgets entries
  (unknown ids ignored); ``count`` and ``entry_ids`` follow; entities no relation names go;
- entity dedup: names and aliases resolve after normalisation, a second ``index`` of an entity
  unites aliases and keeps the first name, resolution and listing honour the scope exactly;
- ``search``: scores ``1/depth`` summed over seeds, order, paths, ``hops``, ``fan_out`` and
  ``limit`` exactly as :func:`~lightmem_hookspecs.graph.walk` defines them;
- every :class:`~lightmem_hookspecs.SearchFilter` field, alone and combined, on ``search`` and
  ``relations``: a relation that fails the filter is neither returned nor walked through;
- validity: a newer exclusive relation with another object closes the older one
  (``valid_until``, ``superseded_at``, ``superseded_by``) in any arrival order and only within
  one scope, subject and label; a restatement or a non-exclusive relation closes nothing;
  deleting the closer reopens; ``Validity`` ``at`` / ``start``-``end`` / ``current`` select;
- ``entry_counts``: distinct entries per entity, under every filter, following changes;
- persistence: a new instance sees entities, aliases, relations with their validity, entries;
- where the graph offers :class:`~lightmem_hookspecs.IndexCompaction` (``compact``; skipped
  otherwise): after a deletion, the relations, entities, entries and walks left are unchanged,
  also after a reopen.
"""

from __future__ import annotations

import datetime as dt
import time

import pytest
from lightmem_hookspecs import (
    Entity,
    GraphHit,
    GraphMemory,
    IndexCompaction,
    Relation,
    Scope,
    SearchFilter,
    Validity,
    to_epoch,
)
from lightmem_hookspecs import graph as g

from .capabilities import require

_DAY = 86400.0
_T0 = to_epoch(dt.datetime(2024, 3, 1, 12, 0, 0))
U1 = Scope(user_id="u1")
U2 = Scope(user_id="u2")


def day(n: float) -> float:
    return _T0 + n * _DAY


def ent(name: str, scope: Scope = U1, aliases: tuple[str, ...] = (), kind: str | None = None):
    return Entity(id=g.entity_id(scope, name), name=name, scope=scope, aliases=aliases, kind=kind)


def rel(
    entry: str,
    subject: str,
    label: str,
    obj: str,
    *,
    scope: Scope = U1,
    node_scope: Scope | None = None,
    speaker: str | None = None,
    topic: int | None = None,
    when: float | None = None,
    exclusive: bool = False,
    messages: tuple[str, ...] = (),
) -> Relation:
    """A relation between the entities named ``subject`` and ``obj`` of ``node_scope``."""
    nodes = node_scope or scope
    sid, oid = g.entity_id(nodes, subject), g.entity_id(nodes, obj)
    return Relation(
        id=g.relation_id(entry, sid, label, oid),
        subject=sid,
        relation=label,
        object=oid,
        entry_id=entry,
        fact=f"{subject} {label.replace('_', ' ')} {obj}.",
        subject_name=subject,
        object_name=obj,
        message_ids=messages or (f"m-{entry}",),
        scope=scope,
        speaker=speaker,
        topic_id=topic,
        valid_from=when,
        exclusive=exclusive,
    )


def _scoped(user=None, agent=None, run=None) -> Scope:
    return Scope(user_id=user, agent_id=agent, run_id=run)


#: Relations around "Alice" whose payloads differ in every filterable field. The entities are
#: those of U1; each relation carries its own scope, so only the filter decides what a walk
#: may use. Depths from Alice: f1 f3 f6 = 1; f2 f5 f7 f9 = 2; f4 = 3; f8 = 4.
GARDEN: tuple[Relation, ...] = (
    rel(
        "f1",
        "Alice",
        "friend_of",
        "Bob",
        scope=_scoped("u1", "a1", "r1"),
        node_scope=U1,
        speaker="Alice",
        topic=1,
        when=day(0),
    ),
    rel(
        "f2",
        "Bob",
        "lives_in",
        "Paris",
        scope=_scoped("u1", "a1", "r2"),
        node_scope=U1,
        speaker="Bob",
        topic=1,
        when=day(1),
    ),
    rel(
        "f2",
        "Bob",
        "friend_of",
        "Carol",
        scope=_scoped("u1", "a1", "r2"),
        node_scope=U1,
        speaker="Bob",
        topic=1,
        when=day(1),
    ),
    rel(
        "f3",
        "Alice",
        "works_at",
        "Bakery",
        scope=_scoped("u1", "a2", "r1"),
        node_scope=U1,
        speaker="Alice",
        topic=2,
        when=day(2),
    ),
    rel(
        "f4",
        "Paris",
        "located_in",
        "France",
        scope=_scoped("u2", "a1", "r1"),
        node_scope=U1,
        speaker="Carol",
        topic=2,
        when=day(3),
    ),
    rel("f5", "Bob", "owns", "Rex", scope=_scoped("u2"), node_scope=U1, speaker="Bob", when=day(4)),
    rel("f6", "Alice", "plans", "Party", scope=_scoped("u1"), node_scope=U1, topic=3),
    rel(
        "f7",
        "Bakery",
        "sells",
        "Bread",
        scope=_scoped(),
        node_scope=U1,
        speaker="Alice",
        when=day(5),
    ),
    rel("f8", "France", "borders", "Spain", scope=_scoped(), node_scope=U1),
)
GARDEN_ENTITIES = tuple(
    ent(n, U1)
    for n in (
        "Alice",
        "Bob",
        "Paris",
        "Carol",
        "Bakery",
        "France",
        "Rex",
        "Party",
        "Bread",
        "Spain",
    )
)
GARDEN_ENTRIES = ("f1", "f2", "f3", "f4", "f5", "f6", "f7", "f8")
ALICE = g.entity_id(U1, "Alice")

#: Filters covering every field, alone and combined, and both sides of each time bound.
FILTERS: dict[str, SearchFilter] = {
    "none": SearchFilter(),
    "user": SearchFilter(user_id="u1"),
    "other user": SearchFilter(user_id="u2"),
    "unknown user": SearchFilter(user_id="nobody"),
    "agent": SearchFilter(agent_id="a1"),
    "run": SearchFilter(run_id="r1"),
    "scope": SearchFilter(user_id="u1", agent_id="a1", run_id="r2"),
    "speaker": SearchFilter(speaker="Alice"),
    "speaker + user": SearchFilter(user_id="u1", speaker="Bob"),
    "topic": SearchFilter(topic_id=1),
    "topic + user": SearchFilter(topic_id=2, user_id="u1"),
    "time_gt": SearchFilter(time_gt=day(1)),
    "time_gte": SearchFilter(time_gte=day(1)),
    "time_lt": SearchFilter(time_lt=day(2)),
    "time_lte": SearchFilter(time_lte=day(2)),
    "time window": SearchFilter(time_gte=day(0), time_lt=day(4)),
    "time as datetime": SearchFilter(time_lte=dt.datetime(2024, 3, 5, 12, 0, 0)),
    "exclude": SearchFilter(exclude_ids=frozenset({"f1"})),
    "exclude leaf": SearchFilter(exclude_ids=frozenset({"f6", "f7"})),
    "exclude unknown id": SearchFilter(exclude_ids=frozenset({"not-stored"})),
    "everything": SearchFilter(
        user_id="u1", speaker="Alice", time_lte=day(10), exclude_ids=frozenset({"f6"})
    ),
}


def expected_walk(relations, seeds, **kwargs) -> list[GraphHit]:
    """What :func:`lightmem_hookspecs.graph.walk` returns over ``relations`` (the reference)."""

    def touching(ids):
        out = {i: [] for i in ids}
        for r in relations:
            for end in {r.subject, r.object} & set(ids):
                out[end].append(r)
        return out

    return g.walk(seeds, touching, **kwargs)


def summary(hits) -> list[tuple[str, float, tuple[str, ...]]]:
    return [(h.entry_id, round(h.score, 6), tuple(r.id for r in h.path)) for h in hits]


class GraphMemoryConformance:
    """The ``GraphMemory`` contract. Needs ``make_backend`` (see the module docstring)."""

    persistent: bool = True

    @pytest.fixture
    def new_backend(self, make_backend):
        made = []

        def build():
            instance = make_backend()
            made.append(instance)
            return instance

        yield build
        for instance in reversed(made):
            instance.close()

    @pytest.fixture
    def backend(self, new_backend):
        return new_backend()

    @pytest.fixture
    def garden(self, backend):
        backend.index(GARDEN_ENTRIES, GARDEN_ENTITIES, GARDEN)
        return backend

    def reopen(self, old, new_backend):
        if not self.persistent:
            pytest.skip("the backend keeps data only as long as the instance")
        old.close()
        return new_backend()

    @staticmethod
    def by_id(relations) -> dict[str, Relation]:
        return {r.id: r for r in relations}

    # -- the protocol and bookkeeping ------------------------------------------------------------

    def test_is_a_graph_memory(self, backend):
        assert isinstance(backend, GraphMemory)

    def test_a_new_graph_is_empty(self, backend):
        assert backend.count() == 0
        assert backend.entry_ids() == set()
        assert backend.entities() == []
        assert backend.relations() == []
        assert backend.search([ALICE], limit=5) == []

    def test_index_stores_relations_as_given(self, garden):
        assert garden.count() == len(GARDEN)
        assert garden.entry_ids() == set(GARDEN_ENTRIES)
        stored = self.by_id(garden.relations())
        assert stored == {r.id: r for r in GARDEN}

    def test_index_replaces_what_an_entry_had(self, garden):
        new = rel(
            "f2",
            "Bob",
            "lives_in",
            "Lyon",
            scope=_scoped("u1", "a1", "r2"),
            node_scope=U1,
            speaker="Bob",
            topic=1,
            when=day(1),
        )
        garden.index(["f2"], [ent("Bob"), ent("Lyon")], [new])
        f2 = [r for r in garden.relations() if r.entry_id == "f2"]
        assert f2 == [new]
        assert garden.count() == len(GARDEN) - 1
        assert {e.name for e in garden.entities()} >= {"Lyon"}
        assert "Carol" not in {e.name for e in garden.entities()}, "Carol lost her relation"

    def test_entries_without_relations_are_recorded(self, backend):
        backend.index(
            ["quiet", "loud"], [ent("Alice"), ent("Bob")], [rel("loud", "Alice", "met", "Bob")]
        )
        assert backend.entry_ids() == {"quiet", "loud"}
        assert backend.count() == 1

    def test_a_relation_of_another_entry_is_refused(self, backend):
        with pytest.raises((ValueError, RuntimeError)):
            backend.index(["a"], [ent("Alice"), ent("Bob")], [rel("b", "Alice", "met", "Bob")])
        assert backend.count() == 0
        assert backend.entry_ids() == set()

    def test_a_relation_to_an_unknown_entity_is_refused(self, backend):
        with pytest.raises((ValueError, RuntimeError)):
            backend.index(["a"], [ent("Alice")], [rel("a", "Alice", "met", "Bob")])
        assert backend.count() == 0
        assert backend.entry_ids() == set()
        assert backend.entities() == []

    def test_entities_no_relation_names_are_dropped(self, backend):
        backend.index(
            ["a"], [ent("Alice"), ent("Bob"), ent("Zed")], [rel("a", "Alice", "met", "Bob")]
        )
        assert {e.name for e in backend.entities()} == {"Alice", "Bob"}
        backend.delete(["a"])
        assert backend.entities() == []
        assert backend.resolve(["Alice"]) == []

    def test_delete_forgets_entries(self, garden):
        garden.delete(["f2", "never-stored"])
        garden.delete([])
        assert garden.entry_ids() == set(GARDEN_ENTRIES) - {"f2"}
        assert garden.count() == len(GARDEN) - 2
        assert all(r.entry_id != "f2" for r in garden.relations())
        names = {e.name for e in garden.entities()}
        assert "Carol" not in names and "Paris" in names

    def test_relations_of_entries(self, garden):
        f2 = garden.relations(entry_ids=["f2"])
        assert sorted(r.object_name for r in f2) == ["Carol", "Paris"]
        assert garden.relations(entry_ids=[]) == []
        assert f2[0].message_ids == ("m-f2",)

    def test_close_twice_is_harmless(self, backend):
        backend.close()
        backend.close()

    # -- entities: dedup, aliases, scope -------------------------------------------------------

    def test_names_and_aliases_resolve_after_normalisation(self, backend):
        caroline = ent("Caroline", aliases=("Caro",), kind="person")
        backend.index(
            ["a"], [caroline, ent("Sweden")], [rel("a", "Caroline", "moved_to", "Sweden")]
        )
        for name in ("Caroline", "caroline", "  CAROLINE ", "Caro", "caro's", "the Caro"):
            found = backend.resolve([name])
            assert [e.id for e in found] == [caroline.id], name
        assert backend.resolve(["Carolina", ""]) == []
        assert found[0].kind == "person"

    def test_a_second_index_unites_aliases_and_keeps_the_name(self, backend):
        first = ent("Caroline", aliases=("Caro",))
        backend.index(["a"], [first, ent("Sweden")], [rel("a", "Caroline", "moved_to", "Sweden")])
        again = Entity(id=first.id, name="Carrie", scope=U1, aliases=("caro", "Mrs. Smith"))
        backend.index(["b"], [again, ent("Sweden")], [rel("b", "Caroline", "likes", "Sweden")])
        (stored,) = [e for e in backend.entities() if e.id == first.id]
        assert stored.name == "Caroline"
        assert set(g.normalize_name(a) for a in stored.aliases) == {"caro", "carrie", "mrs smith"}
        assert [e.id for e in backend.resolve(["mrs smith"])] == [first.id]
        assert len(backend.entities()) == 2

    def test_resolution_honours_the_scope(self, backend):
        mine, theirs = ent("Alice", U1), ent("Alice", U2, aliases=("Ally",))
        run = ent("Alice", Scope(user_id="u1", run_id="r9"))
        backend.index(
            ["a", "b", "c"],
            [mine, theirs, run, ent("Bob", U1), ent("Bob", U2), ent("Bob", run.scope)],
            [
                rel("a", "Alice", "met", "Bob", scope=U1),
                rel("b", "Alice", "met", "Bob", scope=U2),
                rel("c", "Alice", "met", "Bob", scope=run.scope),
            ],
        )
        ids = lambda f: {e.id for e in backend.resolve(["alice", "ally"], filter=f)}  # noqa: E731
        assert ids(SearchFilter(user_id="u1")) == {mine.id, run.id}
        assert ids(SearchFilter(user_id="u2")) == {theirs.id}
        assert ids(SearchFilter(user_id="u1", run_id="r9")) == {run.id}
        assert ids(SearchFilter(run_id="r9")) == {run.id}
        assert ids(SearchFilter(user_id="U1")) == set()
        assert ids(None) == {mine.id, theirs.id, run.id}
        assert backend.resolve(["Ally"], filter=SearchFilter(user_id="u1")) == []
        listed = {e.id for e in backend.entities(filter=SearchFilter(user_id="u2"))}
        assert listed == {theirs.id, g.entity_id(U2, "Bob")}

    # -- search: scores, paths, bounds ---------------------------------------------------------

    def test_search_scores_paths_and_order(self, garden):
        hits = garden.search([ALICE], limit=20, hops=4, fan_out=20)
        assert all(isinstance(h, GraphHit) for h in hits)
        want = expected_walk(GARDEN, [ALICE], limit=20, hops=4, fan_out=20)
        assert summary(hits) == summary(want)
        depth = {h.entry_id: len(h.path) for h in hits}
        assert depth == {"f1": 1, "f3": 1, "f6": 1, "f2": 2, "f5": 2, "f7": 2, "f4": 3, "f8": 4}
        assert hits[0].score == pytest.approx(1.0)
        assert all(h.path[0].subject == ALICE or h.path[0].object == ALICE for h in hits)
        assert all(h.path[-1].entry_id == h.entry_id for h in hits)

    def test_hops_bound_the_walk(self, garden):
        one = garden.search([ALICE], limit=20, hops=1)
        assert {h.entry_id for h in one} == {"f1", "f3", "f6"}
        two = garden.search([ALICE], limit=20, hops=2)
        assert summary(two) == summary(expected_walk(GARDEN, [ALICE], limit=20, hops=2, fan_out=20))

    def test_fan_out_follows_the_newest_relations(self, backend):
        hub = [rel(f"h{i}", "Hub", "knows", f"Spoke{i}", when=day(i)) for i in range(5)]
        hub.append(rel("h9", "Hub", "knows", "Undated"))
        tails = [rel(f"t{i}", f"Spoke{i}", "owns", f"Thing{i}", when=day(i)) for i in range(5)]
        entities = [ent("Hub"), ent("Undated")] + [
            e for i in range(5) for e in (ent(f"Spoke{i}"), ent(f"Thing{i}"))
        ]
        rels = hub + tails
        backend.index([r.entry_id for r in rels], entities, rels)
        seed = g.entity_id(U1, "Hub")
        hits = backend.search([seed], limit=20, hops=2, fan_out=2)
        assert {h.entry_id for h in hits} == {"h4", "h3", "t4", "t3"}
        hits = backend.search([seed], limit=20, hops=1, fan_out=6)
        assert hits[-1].entry_id == "h9", "an undated relation comes after the dated ones"
        assert summary(backend.search([seed], limit=20, hops=2, fan_out=3)) == summary(
            expected_walk(rels, [seed], limit=20, hops=2, fan_out=3)
        )

    def test_limit_caps_the_results(self, garden):
        full = garden.search([ALICE], limit=20, hops=4)
        assert summary(garden.search([ALICE], limit=3, hops=4)) == summary(full[:3])
        assert garden.search([ALICE], limit=0, hops=4) == []

    def test_scores_add_up_over_seeds(self, garden):
        bob = g.entity_id(U1, "Bob")
        hits = garden.search([ALICE, bob], limit=20, hops=2)
        want = expected_walk(GARDEN, [ALICE, bob], limit=20, hops=2, fan_out=20)
        assert summary(hits) == summary(want)
        scores = {h.entry_id: h.score for h in hits}
        assert scores["f1"] == pytest.approx(2.0)
        assert scores["f2"] == pytest.approx(1.5)

    # -- entry counts --------------------------------------------------------------------------

    def test_entry_counts_count_distinct_entries(self, garden):
        bob, paris = g.entity_id(U1, "Bob"), g.entity_id(U1, "Paris")
        counts = garden.entry_counts([ALICE, bob, paris, "no-such-entity"])
        assert counts == {ALICE: 3, bob: 3, paris: 2, "no-such-entity": 0}, "f2 counts once"
        garden.delete(["f5"])
        assert garden.entry_counts([bob]) == {bob: 2}, "counts follow what is stored"
        both = [e for e in GARDEN_ENTITIES if e.name in ("Bob", "Rex")]
        garden.index(["f5"], both, [r for r in GARDEN if r.entry_id == "f5"])
        assert garden.entry_counts([bob]) == {bob: 3}

    @pytest.mark.parametrize("name", sorted(FILTERS))
    def test_filter_on_entry_counts(self, garden, name):
        f = FILTERS[name]
        ids = [e.id for e in GARDEN_ENTITIES]
        want = {
            e: len({r.entry_id for r in GARDEN if e in (r.subject, r.object) and f.matches(
                r.entry_id, r.payload())})
            for e in ids
        }  # fmt: skip
        assert garden.entry_counts(ids, filter=f) == want
        assert garden.entry_counts(ids, filter=f) == want, "the same when asked again"

    def test_unknown_seeds_find_nothing(self, garden):
        assert garden.search(["no-such-entity"], limit=5) == []

    # -- filters -------------------------------------------------------------------------------

    @pytest.mark.parametrize("name", sorted(FILTERS))
    def test_filter_on_search(self, garden, name):
        f = FILTERS[name]
        hits = garden.search([ALICE], limit=50, hops=4, fan_out=50, filter=f)
        want = expected_walk(GARDEN, [ALICE], limit=50, hops=4, fan_out=50, filter=f)
        assert summary(hits) == summary(want)
        for hit in hits:
            assert all(f.matches(r.entry_id, r.payload()) for r in hit.path)

    @pytest.mark.parametrize("name", sorted(FILTERS))
    def test_filter_on_relations(self, garden, name):
        f = FILTERS[name]
        got = {r.id for r in garden.relations(filter=f)}
        assert got == {r.id for r in GARDEN if f.matches(r.entry_id, r.payload())}

    def test_a_filtered_relation_is_not_walked_through(self, garden):
        hits = garden.search([ALICE], limit=50, hops=4, filter=SearchFilter(speaker="Alice"))
        assert {h.entry_id for h in hits} == {"f1", "f3", "f7"}
        behind = garden.search([ALICE], limit=50, hops=4, filter=SearchFilter(speaker="Bob"))
        assert behind == [], "Bob's relations lie behind relations Alice's filter drops"

    # -- validity ------------------------------------------------------------------------------

    def moves(self):
        return [
            rel("m1", "Alice", "lives_in", "Paris", when=day(0), exclusive=True),
            rel("m2", "Alice", "lives_in", "London", when=day(10), exclusive=True),
            rel("m3", "Alice", "lives_in", "London", when=day(12), exclusive=True),
            rel("m4", "Alice", "lives_in", "Rome", when=day(20), exclusive=True),
        ]

    def index_each(self, backend, relations):
        for r in relations:
            backend.index(
                [r.entry_id], [ent(r.subject_name, r.scope), ent(r.object_name, r.scope)], [r]
            )

    def test_a_contradicting_relation_closes_the_older_one(self, backend):
        m1, m2 = self.moves()[:2]
        self.index_each(backend, [m1])
        before = time.time()
        self.index_each(backend, [m2])
        after = time.time()
        stored = self.by_id(backend.relations())
        old, new = stored[m1.id], stored[m2.id]
        assert old.valid_until == pytest.approx(day(10))
        assert old.superseded_by == m2.id
        assert before - 1 <= old.superseded_at <= after + 1
        assert (new.valid_until, new.superseded_at, new.superseded_by) == (None, None, None)
        assert old.valid_from == pytest.approx(day(0)), "the history keeps the old relation"

    def test_closing_does_not_depend_on_arrival_order(self, backend, new_backend):
        moves = self.moves()
        self.index_each(backend, list(reversed(moves)))
        stored = self.by_id(backend.relations())
        m1, m2, m3, m4 = moves
        assert (stored[m1.id].valid_until, stored[m1.id].superseded_by) == (day(10), m2.id)
        assert (stored[m2.id].valid_until, stored[m2.id].superseded_by) == (day(20), m4.id)
        assert (stored[m3.id].valid_until, stored[m3.id].superseded_by) == (day(20), m4.id)
        assert stored[m4.id].valid_until is None
        assert all(stored[r.id].superseded_at is not None for r in (m1, m2, m3))

    def test_a_restatement_closes_nothing(self, backend):
        m2, m3 = self.moves()[1:3]
        self.index_each(backend, [m2, m3])
        assert all(r.valid_until is None for r in backend.relations())

    def test_non_exclusive_relations_stay_open(self, backend):
        friends = [
            rel("p1", "Alice", "friend_of", "Bob", when=day(0)),
            rel("p2", "Alice", "friend_of", "Carol", when=day(5)),
        ]
        self.index_each(backend, friends)
        assert all(r.valid_until is None for r in backend.relations())

    def test_closing_stays_within_scope_subject_and_label(self, backend):
        base = rel("s1", "Alice", "lives_in", "Paris", when=day(0), exclusive=True)
        others = [
            rel(
                "s2",
                "Alice",
                "lives_in",
                "Oslo",
                scope=U2,
                node_scope=U1,
                when=day(5),
                exclusive=True,
            ),
            rel("s3", "Alice", "works_in", "Oslo", when=day(6), exclusive=True),
            rel("s4", "Bob", "lives_in", "Oslo", when=day(7), exclusive=True),
        ]
        backend.index(
            ["s1", "s2", "s3", "s4"],
            [ent("Alice"), ent("Paris"), ent("Oslo"), ent("Bob")],
            [base, *others],
        )
        assert all(r.valid_until is None for r in backend.relations())

    def test_deleting_the_closer_reopens(self, backend):
        m1, m2 = self.moves()[:2]
        self.index_each(backend, [m1, m2])
        backend.delete([m2.entry_id])
        (old,) = backend.relations()
        assert (old.valid_until, old.superseded_at, old.superseded_by) == (None, None, None)

    def test_replacing_the_closer_reopens(self, backend):
        m1, m2 = self.moves()[:2]
        self.index_each(backend, [m1, m2])
        same = rel("m2", "Alice", "visited", "London", when=day(10))
        backend.index(["m2"], [ent("Alice"), ent("London")], [same])
        old = self.by_id(backend.relations())[m1.id]
        assert old.valid_until is None

    @pytest.mark.parametrize(
        ("validity", "objects"),
        [
            (Validity(), {"Paris", "London", "Rome"}),
            (Validity(at=day(5)), {"Paris"}),
            (Validity(at=day(10)), {"London"}),
            (Validity(at=day(9.99)), {"Paris"}),
            (Validity(at=day(-1)), set()),
            (Validity(at=day(100)), {"Rome"}),
            (Validity(start=day(5), end=day(11)), {"Paris", "London"}),
            (Validity(start=day(10), end=day(20)), {"London"}),
            (Validity(start=day(20)), {"Rome"}),
            (Validity(end=day(0)), set()),
            (Validity(end=day(0.5)), {"Paris"}),
            (Validity(current=True), {"Rome"}),
            (Validity(current=True, at=day(5)), set()),
            (Validity(at=dt.datetime(2024, 3, 6, 12, 0)), {"Paris"}),
        ],
    )
    def test_validity_selects_relations(self, backend, validity, objects):
        self.index_each(backend, self.moves())
        got = {r.object_name for r in backend.relations(validity=validity)}
        assert got == objects
        hits = backend.search([ALICE], limit=10, hops=1, validity=validity)
        assert {h.path[-1].object_name for h in hits} == objects

    def test_validity_blocks_the_walk(self, backend):
        rels = [*self.moves()[:2], rel("c1", "Paris", "has", "Louvre", when=day(1))]
        self.index_each(backend, rels)
        hits = backend.search([ALICE], limit=10, hops=2, validity=Validity(at=day(11)))
        assert {h.entry_id for h in hits} == {"m2"}
        hits = backend.search([ALICE], limit=10, hops=2, validity=Validity(at=day(5)))
        assert {h.entry_id for h in hits} == {"m1", "c1"}

    def test_undated_relations_are_always_valid(self, backend):
        self.index_each(backend, [rel("u", "Alice", "likes", "Jazz")])
        assert len(backend.relations(validity=Validity(at=day(-1000)))) == 1

    # -- the optional compaction (``IndexCompaction``) --------------------------------------

    def test_compact_keeps_what_is_left(self, garden, new_backend):
        require(garden, IndexCompaction, "the graph does not offer compact")
        garden.delete(["f2"])
        relations = self.by_id(garden.relations())
        entities = {e.id: e for e in garden.entities()}
        hits = summary(garden.search([ALICE], limit=50, hops=4))
        garden.compact()
        assert self.by_id(garden.relations()) == relations
        assert {e.id: e for e in garden.entities()} == entities
        assert garden.entry_ids() == set(GARDEN_ENTRIES) - {"f2"}
        assert summary(garden.search([ALICE], limit=50, hops=4)) == hits
        garden.compact()  # twice is harmless
        if self.persistent:
            again = self.reopen(garden, new_backend)
            assert self.by_id(again.relations()) == relations
            assert summary(again.search([ALICE], limit=50, hops=4)) == hits

    # -- persistence ---------------------------------------------------------------------------

    def test_reopen_keeps_everything(self, backend, new_backend):
        backend.index(GARDEN_ENTRIES, GARDEN_ENTITIES, GARDEN)
        self.index_each(backend, self.moves())
        backend.index(
            ["alias"],
            [ent("Alice", aliases=("Ally",)), ent("Jazz")],
            [rel("alias", "Alice", "likes", "Jazz")],
        )
        backend.index(["bare"], [], [])
        relations = self.by_id(backend.relations())
        entities = {e.id: e for e in backend.entities()}
        hits = summary(backend.search([ALICE], limit=50, hops=4))
        again = self.reopen(backend, new_backend)
        assert self.by_id(again.relations()) == relations
        assert {e.id: e for e in again.entities()} == entities
        assert again.entry_ids() == set(GARDEN_ENTRIES) | {"m1", "m2", "m3", "m4", "alias", "bare"}
        assert summary(again.search([ALICE], limit=50, hops=4)) == hits
        assert [e.id for e in again.resolve(["ally"])] == [ALICE]
        again.delete(["m4"])
        third = self.reopen(again, new_backend)
        assert self.by_id(third.relations())[self.moves()[2].id].valid_until is None
        assert "m4" not in third.entry_ids()
