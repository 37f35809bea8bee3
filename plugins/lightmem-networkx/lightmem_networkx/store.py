"""The ``networkx`` graph memory: a MultiDiGraph in memory, an SQLite file as its storage.

Every ``index`` / ``delete`` changes the in-memory graph and writes the same change to SQLite in
one transaction; if the write fails the graph is reloaded from the file, so memory and disk never
disagree. A kill -9 leaves the file at the last committed call (SQLite's journal), and the core
re-indexes entries the record store has and the graph does not.
"""

from __future__ import annotations

import bisect
import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

import attrs
import networkx as nx
from lightmem_hookspecs import Entity, GraphHit, Relation, Scope, SearchFilter, Validity
from lightmem_hookspecs import graph as g

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entities (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, user_id TEXT, agent_id TEXT, run_id TEXT,
    aliases TEXT NOT NULL, kind TEXT
);
CREATE TABLE IF NOT EXISTS relations (
    id TEXT PRIMARY KEY, subject TEXT NOT NULL, relation TEXT NOT NULL, object TEXT NOT NULL,
    entry_id TEXT NOT NULL, fact TEXT NOT NULL, subject_name TEXT NOT NULL,
    object_name TEXT NOT NULL, message_ids TEXT NOT NULL, user_id TEXT, agent_id TEXT,
    run_id TEXT, speaker TEXT, topic_id INTEGER, valid_from REAL, valid_until REAL,
    superseded_at REAL, superseded_by TEXT, exclusive INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS entries (id TEXT PRIMARY KEY);
"""

_REL_COLUMNS = [
    "id",
    "subject",
    "relation",
    "object",
    "entry_id",
    "fact",
    "subject_name",
    "object_name",
    "message_ids",
    "user_id",
    "agent_id",
    "run_id",
    "speaker",
    "topic_id",
    "valid_from",
    "valid_until",
    "superseded_at",
    "superseded_by",
    "exclusive",
]


def _rel_row(r: Relation) -> tuple[Any, ...]:
    return (
        r.id, r.subject, r.relation, r.object, r.entry_id, r.fact, r.subject_name,
        r.object_name, json.dumps(list(r.message_ids)), r.scope.user_id, r.scope.agent_id,
        r.scope.run_id, r.speaker, r.topic_id, r.valid_from, r.valid_until, r.superseded_at,
        r.superseded_by, int(r.exclusive),
    )  # fmt: skip


def _rel_from(row: Sequence[Any]) -> Relation:
    d = dict(zip(_REL_COLUMNS, row, strict=True))
    return Relation(
        id=d["id"], subject=d["subject"], relation=d["relation"], object=d["object"],
        entry_id=d["entry_id"], fact=d["fact"], subject_name=d["subject_name"],
        object_name=d["object_name"], message_ids=tuple(json.loads(d["message_ids"])),
        scope=Scope(d["user_id"], d["agent_id"], d["run_id"]), speaker=d["speaker"],
        topic_id=d["topic_id"], valid_from=d["valid_from"], valid_until=d["valid_until"],
        superseded_at=d["superseded_at"], superseded_by=d["superseded_by"],
        exclusive=bool(d["exclusive"]),
    )  # fmt: skip


class NetworkxGraph:
    """A scoped entity/relation graph; see ``lightmem_hookspecs.GraphMemory`` for the contract."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._db: sqlite3.Connection | None = None
        if path is not None:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        self._load()

    # -- in-memory state ---------------------------------------------------------------------

    def _load(self) -> None:
        self.graph = nx.MultiDiGraph()
        self.rels: dict[str, Relation] = {}
        self.by_entry: dict[str, set[str]] = {}
        self.groups: dict[tuple[Any, ...], set[str]] = {}
        self.names: dict[str, set[str]] = {}
        self.entries: set[str] = set()
        # Per entity: its relations in fan_out_order (built on first use, then kept in order as
        # relations come and go); the scopes of each entry's relations touching it; and its
        # entry count per scope filter asked so far (kept up to date likewise).
        self._adjacent: dict[str, list[Relation]] = {}
        self._refs: dict[str, dict[str, dict[Scope, int]]] = {}
        self._counts: dict[str, dict[tuple[str | None, ...], int]] = {}
        if self._db is None:
            return
        for eid, name, user, agent, run, aliases, kind in self._db.execute(
            "SELECT id, name, user_id, agent_id, run_id, aliases, kind FROM entities"
        ):
            self._put_entity(
                Entity(eid, name, Scope(user, agent, run), tuple(json.loads(aliases)), kind)
            )
        for row in self._db.execute(f"SELECT {', '.join(_REL_COLUMNS)} FROM relations"):
            self._put_relation(_rel_from(row))
        self.entries = {eid for (eid,) in self._db.execute("SELECT id FROM entries")}

    def _put_entity(self, entity: Entity) -> None:
        old = self.graph.nodes[entity.id]["entity"] if entity.id in self.graph else None
        if old is not None:
            for key in old.names():
                self.names.get(key, set()).discard(entity.id)
        self.graph.add_node(entity.id, entity=entity)
        for key in entity.names():
            self.names.setdefault(key, set()).add(entity.id)

    def _drop_entity(self, entity_id: str) -> None:
        entity = self.graph.nodes[entity_id]["entity"]
        for key in entity.names():
            ids = self.names.get(key)
            if ids is not None:
                ids.discard(entity_id)
                if not ids:
                    del self.names[key]
        self.graph.remove_node(entity_id)

    def _put_relation(self, rel: Relation) -> None:
        if rel.id in self.rels:
            self._drop_relation(rel.id)
        self._track(rel, +1)
        self.rels[rel.id] = rel
        self.graph.add_edge(rel.subject, rel.object, key=rel.id, relation=rel)
        self.by_entry.setdefault(rel.entry_id, set()).add(rel.id)
        if rel.exclusive:
            self.groups.setdefault(g.closing_key(rel), set()).add(rel.id)

    def _track(self, rel: Relation, change: int) -> None:
        """Keep each end's ordered adjacency, entry scopes and entry counts in line with one
        relation added (+1) or removed (-1)."""
        for end in dict.fromkeys((rel.subject, rel.object)):
            adjacent = self._adjacent.get(end)
            if adjacent is not None:
                key = g.fan_out_order(rel)
                at = bisect.bisect_left(adjacent, key, key=g.fan_out_order)
                if change > 0:
                    adjacent.insert(at, rel)
                elif at < len(adjacent) and adjacent[at].id == rel.id:
                    del adjacent[at]
            scopes = self._refs.setdefault(end, {}).setdefault(rel.entry_id, {})
            counts = self._counts.get(end, {})
            before = {k: _counted(scopes, k) for k in counts}
            scopes[rel.scope] = scopes.get(rel.scope, 0) + change
            if scopes[rel.scope] <= 0:
                del scopes[rel.scope]
            for k in counts:
                counts[k] += int(_counted(scopes, k)) - int(before[k])
            if not scopes:
                del self._refs[end][rel.entry_id]
                if not self._refs[end]:
                    del self._refs[end]

    def _drop_relation(self, rel_id: str) -> Relation:
        rel = self.rels.pop(rel_id)
        self._track(rel, -1)
        self.graph.remove_edge(rel.subject, rel.object, key=rel_id)
        ids = self.by_entry[rel.entry_id]
        ids.discard(rel_id)
        if not ids:
            del self.by_entry[rel.entry_id]
        if rel.exclusive:
            group = self.groups[g.closing_key(rel)]
            group.discard(rel_id)
            if not group:
                del self.groups[g.closing_key(rel)]
        return rel

    # -- writing ---------------------------------------------------------------------------------

    def _change(
        self,
        entry_ids: Iterable[str],
        entities: Sequence[Entity],
        relations: Sequence[Relation],
        *,
        indexed: bool,
    ) -> None:
        ids = set(entry_ids)
        known = set(self.graph.nodes) | {e.id for e in entities}
        stray = [r.id for r in relations if r.entry_id not in ids]
        if stray:
            raise ValueError(f"relations {stray[:3]} come from entries not in entry_ids")
        dangling = [r.id for r in relations if r.subject not in known or r.object not in known]
        if dangling:
            raise ValueError(f"relations {dangling[:3]} name entities that were not given")
        touched_entities: set[str] = set()
        removed_rels: set[str] = set()
        changed_rels: dict[str, Relation] = {}
        keys: set[tuple[Any, ...]] = set()
        for entry in ids:
            for rel_id in list(self.by_entry.get(entry, ())):
                rel = self._drop_relation(rel_id)
                removed_rels.add(rel_id)
                touched_entities |= {rel.subject, rel.object}
                if rel.exclusive:
                    keys.add(g.closing_key(rel))
        for entity in entities:
            if entity.id in self.graph:
                merged = g.merge_entity(self.graph.nodes[entity.id]["entity"], entity)
            else:
                merged = entity
            self._put_entity(merged)
            touched_entities.add(entity.id)
        for rel in relations:
            fresh = Relation(**{**_fields(rel), "valid_until": None, "superseded_at": None,
                                "superseded_by": None})  # fmt: skip
            self._put_relation(fresh)
            changed_rels[rel.id] = fresh
            removed_rels.discard(rel.id)
            if rel.exclusive:
                keys.add(g.closing_key(rel))
        entries_before = set(self.entries)
        if indexed:
            self.entries |= ids
        else:
            self.entries -= ids
        now = time.time()
        for key in keys:
            group = [self.rels[i] for i in self.groups.get(key, ())]
            for rel in g.apply_closing(group, now):
                self._put_relation(rel)
                changed_rels[rel.id] = rel
        removed_entities = [
            e for e in touched_entities if e in self.graph and not self.graph.degree(e)
        ]
        for entity_id in removed_entities:
            self._drop_entity(entity_id)
        kept_entities = [self.graph.nodes[e]["entity"] for e in touched_entities if e in self.graph]
        self._write(
            removed_rels,
            changed_rels.values(),
            removed_entities,
            kept_entities,
            self.entries - entries_before,
            entries_before - self.entries,
        )

    def _write(
        self,
        removed_rels: Iterable[str],
        changed_rels: Iterable[Relation],
        removed_entities: Iterable[str],
        kept_entities: Iterable[Entity],
        added_entries: Iterable[str],
        removed_entries: Iterable[str],
    ) -> None:
        db = self._db
        if db is None:
            return
        try:
            db.execute("BEGIN IMMEDIATE")
            db.executemany("DELETE FROM relations WHERE id = ?", [(i,) for i in removed_rels])
            db.executemany(
                f"INSERT OR REPLACE INTO relations ({', '.join(_REL_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(_REL_COLUMNS))})",
                [_rel_row(r) for r in changed_rels],
            )
            db.executemany("DELETE FROM entities WHERE id = ?", [(i,) for i in removed_entities])
            db.executemany(
                "INSERT OR REPLACE INTO entities (id, name, user_id, agent_id, run_id, aliases, "
                "kind) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (e.id, e.name, e.scope.user_id, e.scope.agent_id, e.scope.run_id,
                     json.dumps(list(e.aliases)), e.kind)
                    for e in kept_entities
                ],
            )  # fmt: skip
            db.executemany("DELETE FROM entries WHERE id = ?", [(i,) for i in removed_entries])
            db.executemany("INSERT INTO entries (id) VALUES (?)", [(i,) for i in added_entries])
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            self._load()
            raise

    def index(
        self, entry_ids: Sequence[str], entities: Sequence[Entity], relations: Sequence[Relation]
    ) -> None:
        with self._lock:
            self._change(entry_ids, entities, relations, indexed=True)

    def delete(self, entry_ids: Sequence[str]) -> None:
        with self._lock:
            self._change(entry_ids, (), (), indexed=False)

    # -- reading ---------------------------------------------------------------------------------

    def entry_ids(self) -> set[str]:
        with self._lock:
            return set(self.entries)

    def resolve(self, names: Sequence[str], *, filter: SearchFilter | None = None) -> list[Entity]:
        with self._lock:
            found: dict[str, Entity] = {}
            for name in names:
                for entity_id in self.names.get(g.normalize_name(name), ()):
                    entity = self.graph.nodes[entity_id]["entity"]
                    if g.scope_matches(entity.scope, filter):
                        found[entity_id] = entity
            return list(found.values())

    def entities(self, *, filter: SearchFilter | None = None) -> list[Entity]:
        with self._lock:
            return [
                data["entity"]
                for _, data in self.graph.nodes(data=True)
                if g.scope_matches(data["entity"].scope, filter)
            ]

    def relations(
        self,
        *,
        entry_ids: Sequence[str] | None = None,
        filter: SearchFilter | None = None,
        validity: Validity | None = None,
    ) -> list[Relation]:
        with self._lock:
            if entry_ids is None:
                pool: Iterable[Relation] = self.rels.values()
            else:
                pool = [self.rels[i] for e in entry_ids for i in self.by_entry.get(e, ())]
            passes = g.usable_check(filter, validity)
            return [r for r in pool if passes(r)]

    def _touching(self, entity_ids: Sequence[str]) -> dict[str, list[Relation]]:
        """Each entity's relations, both directions, in ``fan_out_order`` (cached per entity)."""
        out: dict[str, list[Relation]] = {}
        for entity in entity_ids:
            cached = self._adjacent.get(entity)
            if cached is None:
                if entity in self.graph:
                    found = [d["relation"] for _, _, d in self.graph.out_edges(entity, data=True)]
                    found += [
                        d["relation"]
                        for u, _, d in self.graph.in_edges(entity, data=True)
                        if u != entity
                    ]
                    cached = sorted(found, key=g.fan_out_order)
                    self._adjacent[entity] = cached
                else:
                    cached = []
            out[entity] = cached
        return out

    def search(
        self,
        seeds: Sequence[str],
        *,
        limit: int,
        hops: int = 2,
        fan_out: int = 20,
        filter: SearchFilter | None = None,
        validity: Validity | None = None,
    ) -> list[GraphHit]:
        with self._lock:
            return g.walk(
                seeds,
                self._touching,
                limit=limit,
                hops=hops,
                fan_out=fan_out,
                filter=filter,
                validity=validity,
                ordered=True,
            )

    def entry_counts(
        self, entity_ids: Sequence[str], *, filter: SearchFilter | None = None
    ) -> dict[str, int]:
        f = filter or SearchFilter()
        scope_key = (f.user_id, f.agent_id, f.run_id)
        with self._lock:
            if attrs.evolve(f, user_id=None, agent_id=None, run_id=None) != SearchFilter():
                return g.entry_counts(entity_ids, self._touching, filter=f)
            # Only scope fields: counted once per entity and scope filter, then kept up to date.
            out: dict[str, int] = {}
            for entity in dict.fromkeys(entity_ids):
                cached = self._counts.setdefault(entity, {})
                if scope_key not in cached:
                    refs = self._refs.get(entity, {}).values()
                    cached[scope_key] = sum(1 for scopes in refs if _counted(scopes, scope_key))
                out[entity] = cached[scope_key]
            return out

    def count(self) -> int:
        with self._lock:
            return len(self.rels)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


def _counted(scopes: dict[Scope, int], key: tuple[str | None, ...]) -> bool:
    """Whether an entry whose relations have ``scopes`` counts for a scope filter ``key``."""
    user, agent, run = key
    return any(
        (user is None or user == s.user_id)
        and (agent is None or agent == s.agent_id)
        and (run is None or run == s.run_id)
        for s in scopes
    )


def _fields(rel: Relation) -> dict[str, Any]:
    import attrs

    return attrs.asdict(rel, recurse=False)
