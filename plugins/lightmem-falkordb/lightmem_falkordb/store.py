"""The ``falkordb`` graph memory: entities and relations as a property graph on a FalkorDB server.

Data model (one graph per memory, named by the ``graph`` option): ``(:Entity {id, name, aliases,
names, kind, user_id, agent_id, run_id})`` nodes, ``[:REL {id, relation, entry_id, ...}]`` edges
from subject to object, ``(:Entry {id})`` nodes for the indexed entries. Times are stored as text
(``repr`` of the epoch float): the server prints doubles with 15 significant digits, which would
not give back the value the core stored.

Writes: the changes of one ``index`` / ``delete`` call are computed here (what the entries had,
the closing of contradicted relations, entities left without relations), validated, and sent as
one MULTI/EXEC block of Cypher queries, which the server runs without interleaving and logs as
one unit. Walks query the relations of a whole frontier at once, then rank per
``lightmem_hookspecs.graph.walk``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from lightmem_hookspecs import Entity, GraphHit, Relation, Scope, SearchFilter, Validity
from lightmem_hookspecs import graph as g

_TIMES = ("valid_from", "valid_until", "superseded_at")
_REL_RETURN = "properties(r), s.id, o.id"


def _time_text(value: float | None) -> str | None:
    return None if value is None else repr(float(value))


def _rel_props(rel: Relation) -> dict[str, Any]:
    props: dict[str, Any] = {
        "id": rel.id,
        "relation": rel.relation,
        "entry_id": rel.entry_id,
        "fact": rel.fact,
        "subject_name": rel.subject_name,
        "object_name": rel.object_name,
        "message_ids": list(rel.message_ids),
        "user_id": rel.scope.user_id,
        "agent_id": rel.scope.agent_id,
        "run_id": rel.scope.run_id,
        "speaker": rel.speaker,
        "topic_id": rel.topic_id,
        "superseded_by": rel.superseded_by,
        "exclusive": rel.exclusive,
    }
    for name in _TIMES:
        props[name] = _time_text(getattr(rel, name))
    return {k: v for k, v in props.items() if v is not None}


def _rel_from(props: dict[str, Any], subject: str, obj: str) -> Relation:
    return Relation(
        id=props["id"],
        subject=subject,
        relation=props["relation"],
        object=obj,
        entry_id=props["entry_id"],
        fact=props.get("fact", ""),
        subject_name=props.get("subject_name", ""),
        object_name=props.get("object_name", ""),
        message_ids=tuple(props.get("message_ids") or ()),
        scope=Scope(props.get("user_id"), props.get("agent_id"), props.get("run_id")),
        speaker=props.get("speaker"),
        topic_id=props.get("topic_id"),
        valid_from=_float(props.get("valid_from")),
        valid_until=_float(props.get("valid_until")),
        superseded_at=_float(props.get("superseded_at")),
        superseded_by=props.get("superseded_by"),
        exclusive=bool(props.get("exclusive", False)),
    )


def _float(text: Any) -> float | None:
    return None if text is None else float(text)


def _entity_props(entity: Entity) -> dict[str, Any]:
    props = {
        "id": entity.id,
        "name": entity.name,
        "aliases": list(entity.aliases),
        "names": list(entity.names()),
        "kind": entity.kind,
        "user_id": entity.scope.user_id,
        "agent_id": entity.scope.agent_id,
        "run_id": entity.scope.run_id,
    }
    return {k: v for k, v in props.items() if v is not None}


def _entity_from(props: dict[str, Any]) -> Entity:
    return Entity(
        id=props["id"],
        name=props["name"],
        scope=Scope(props.get("user_id"), props.get("agent_id"), props.get("run_id")),
        aliases=tuple(props.get("aliases") or ()),
        kind=props.get("kind"),
    )


class FalkorGraph:
    """A scoped entity/relation graph on FalkorDB; see ``lightmem_hookspecs.GraphMemory``."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 6379,
        graph: str = "lightmem",
        username: str | None = None,
        password: str | None = None,
        timeout: float | None = 30.0,
    ) -> None:
        from falkordb import FalkorDB

        self.name = graph
        self.db = FalkorDB(
            host=host, port=port, username=username, password=password, socket_timeout=timeout
        )
        self.graph = self.db.select_graph(graph)
        self._closed = False
        for query in (
            "CREATE INDEX FOR (e:Entity) ON (e.id)",
            "CREATE INDEX FOR (e:Entity) ON (e.names)",
            "CREATE INDEX FOR (x:Entry) ON (x.id)",
            "CREATE INDEX FOR ()-[r:REL]-() ON (r.entry_id)",
        ):
            try:
                self.graph.query(query)
            except Exception as exc:  # an index that exists already is fine
                if "already indexed" not in str(exc).lower():
                    raise

    # -- reading helpers -------------------------------------------------------------------------

    def _rows(self, query: str, params: dict[str, Any] | None = None) -> list[list[Any]]:
        return list(self.graph.ro_query(query, params).result_set)

    def _relations_where(self, where: str, params: dict[str, Any]) -> list[Relation]:
        rows = self._rows(
            f"MATCH (s:Entity)-[r:REL]->(o:Entity) WHERE {where} RETURN {_REL_RETURN}", params
        )
        return [_rel_from(dict(props), s, o) for props, s, o in rows]

    def _entities_by_id(self, ids: Iterable[str]) -> dict[str, Entity]:
        rows = self._rows(
            "MATCH (e:Entity) WHERE e.id IN $ids RETURN properties(e)", {"ids": sorted(set(ids))}
        )
        return {e.id: e for e in (_entity_from(dict(p)) for (p,) in rows)}

    def _group(self, key: tuple[Any, ...]) -> list[Relation]:
        subject, label = key[3], key[4]
        found = self._relations_where(
            "s.id = $subject AND r.relation = $label AND r.exclusive = true",
            {"subject": subject, "label": label},
        )
        return [r for r in found if g.closing_key(r) == key]

    # -- writing ---------------------------------------------------------------------------------

    def _atomic(self, steps: Sequence[tuple[str, dict[str, Any]]]) -> None:
        from falkordb.helpers import stringify_param_value

        pipe = self.db.connection.pipeline(transaction=True)
        for query, params in steps:
            header = "".join(f"{k}={stringify_param_value(v)} " for k, v in params.items())
            pipe.execute_command("GRAPH.QUERY", self.name, f"CYPHER {header}{query}", "--compact")
        pipe.execute()

    def _change(
        self,
        entry_ids: Sequence[str],
        entities: Sequence[Entity],
        relations: Sequence[Relation],
        *,
        indexed: bool,
    ) -> None:
        ids = sorted(set(entry_ids))
        stray = [r.id for r in relations if r.entry_id not in set(ids)]
        if stray:
            raise ValueError(f"relations {stray[:3]} come from entries not in entry_ids")
        given = {e.id for e in entities}
        ends = {r.subject for r in relations} | {r.object for r in relations}
        stored = self._entities_by_id(ends | given)
        dangling = [r.id for r in relations if not {r.subject, r.object} <= given | set(stored)]
        if dangling:
            raise ValueError(f"relations {dangling[:3]} name entities that were not given")
        old = self._relations_where("r.entry_id IN $ids", {"ids": ids}) if ids else []
        keys = {g.closing_key(r) for r in [*old, *relations] if r.exclusive}
        merged: dict[str, Entity] = {}
        for entity in entities:
            base = merged.get(entity.id) or stored.get(entity.id)
            merged[entity.id] = entity if base is None else g.merge_entity(base, entity)
        fresh = {
            r.id: Relation(
                **{**_fields(r), "valid_until": None, "superseded_at": None, "superseded_by": None}
            )
            for r in relations
        }
        gone = {r.id for r in old}
        now = time.time()
        for key in keys:
            group = {r.id: r for r in self._group(key) if r.id not in gone}
            group.update(
                {i: r for i, r in fresh.items() if g.closing_key(r) == key and r.exclusive}
            )
            for rel in g.apply_closing(list(group.values()), now):
                fresh[rel.id] = rel
        touched = {r.subject for r in old} | {r.object for r in old} | set(merged)
        steps: list[tuple[str, dict[str, Any]]] = [
            (
                "MATCH ()-[r:REL]->() WHERE r.entry_id IN $ids OR r.id IN $rids DELETE r",
                {"ids": ids, "rids": sorted(fresh)},
            ),
            (
                "UNWIND $ents AS ent MERGE (e:Entity {id: ent.id}) SET e = ent",
                {"ents": [_entity_props(e) for e in merged.values()]},
            ),
            (
                "UNWIND $rels AS rel MATCH (s:Entity {id: rel.s}), (o:Entity {id: rel.o}) "
                "CREATE (s)-[r:REL]->(o) SET r = rel.p",
                {
                    "rels": [
                        {"s": r.subject, "o": r.object, "p": _rel_props(r)} for r in fresh.values()
                    ]
                },
            ),
            (
                "MATCH (e:Entity) WHERE e.id IN $ids OPTIONAL MATCH (e)-[r:REL]-() "
                "WITH e, count(r) AS n WHERE n = 0 DELETE e",
                {"ids": sorted(touched)},
            ),
        ]
        if indexed:
            steps.append(("UNWIND $ids AS i MERGE (:Entry {id: i})", {"ids": ids}))
        else:
            steps.append(("MATCH (x:Entry) WHERE x.id IN $ids DELETE x", {"ids": ids}))
        self._atomic(steps)

    def index(
        self, entry_ids: Sequence[str], entities: Sequence[Entity], relations: Sequence[Relation]
    ) -> None:
        self._change(entry_ids, entities, relations, indexed=True)

    def delete(self, entry_ids: Sequence[str]) -> None:
        if entry_ids:
            self._change(entry_ids, (), (), indexed=False)

    # -- reading ---------------------------------------------------------------------------------

    def entry_ids(self) -> set[str]:
        return {i for (i,) in self._rows("MATCH (x:Entry) RETURN x.id")}

    def resolve(self, names: Sequence[str], *, filter: SearchFilter | None = None) -> list[Entity]:
        keys = sorted({g.normalize_name(n) for n in names} - {""})
        if not keys:
            return []
        rows = self._rows(
            "MATCH (e:Entity) WHERE any(k IN e.names WHERE k IN $keys) RETURN properties(e)",
            {"keys": keys},
        )
        found = [_entity_from(dict(p)) for (p,) in rows]
        return [e for e in found if g.scope_matches(e.scope, filter)]

    def entities(self, *, filter: SearchFilter | None = None) -> list[Entity]:
        rows = self._rows("MATCH (e:Entity) RETURN properties(e)")
        found = [_entity_from(dict(p)) for (p,) in rows]
        return [e for e in found if g.scope_matches(e.scope, filter)]

    def relations(
        self,
        *,
        entry_ids: Sequence[str] | None = None,
        filter: SearchFilter | None = None,
        validity: Validity | None = None,
    ) -> list[Relation]:
        if entry_ids is None:
            found = self._relations_where("true", {})
        else:
            found = self._relations_where("r.entry_id IN $ids", {"ids": sorted(set(entry_ids))})
        return [r for r in found if g.usable(r, filter, validity)]

    def _touching(self, entity_ids: Sequence[str]) -> dict[str, list[Relation]]:
        ids = sorted(set(entity_ids))
        out: dict[str, list[Relation]] = {e: [] for e in ids}
        outgoing = self._relations_where("s.id IN $ids", {"ids": ids})
        incoming = self._relations_where("o.id IN $ids", {"ids": ids})
        for rel in outgoing:
            out[rel.subject].append(rel)
        for rel in incoming:
            if rel.subject != rel.object:
                out[rel.object].append(rel)
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
        return g.walk(
            seeds,
            self._touching,
            limit=limit,
            hops=hops,
            fan_out=fan_out,
            filter=filter,
            validity=validity,
        )

    def entry_counts(
        self, entity_ids: Sequence[str], *, filter: SearchFilter | None = None
    ) -> dict[str, int]:
        import attrs

        f = filter or SearchFilter()
        ids = sorted(set(entity_ids))
        if not ids:
            return {}
        if attrs.evolve(f, user_id=None, agent_id=None, run_id=None) != SearchFilter():
            return g.entry_counts(ids, self._touching, filter=f)
        where = ["e.id IN $ids"]
        params: dict[str, Any] = {"ids": ids}
        for key in ("user_id", "agent_id", "run_id"):
            value = getattr(f, key)
            if value is not None:
                where.append(f"r.{key} = ${key}")
                params[key] = value
        rows = self._rows(
            f"MATCH (e:Entity)-[r:REL]-() WHERE {' AND '.join(where)} "
            "RETURN e.id, count(DISTINCT r.entry_id)",
            params,
        )
        out = dict.fromkeys(ids, 0)
        out.update({str(e): int(n) for e, n in rows})
        return out

    def count(self) -> int:
        rows = self._rows("MATCH ()-[r:REL]->() RETURN count(r)")
        return int(rows[0][0]) if rows else 0

    def drop(self) -> None:
        """Delete the whole graph from the server (tests; ``lightmem`` never calls it)."""
        try:
            self.graph.delete()
        except Exception as exc:  # deleting a graph that was never written is fine
            if "empty key" not in str(exc).lower() and "invalid graph" not in str(exc).lower():
                raise

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.db.connection.close()


def _fields(rel: Relation) -> dict[str, Any]:
    import attrs

    return attrs.asdict(rel, recurse=False)
