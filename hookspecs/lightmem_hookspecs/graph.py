"""Graph memory value types and the reference semantics every graph backend shares.

A graph memory stores **entities** (people, places, things, dates) and **relations** between
them (``Caroline -lives_in-> Sweden``), each relation derived from one memory entry. The core
builds entities and relations (from the extraction call, or from the entry text without an LLM)
and hands them to a :class:`~lightmem_hookspecs.GraphMemory` backend; the backend stores them,
keeps relation validity intervals, resolves names and walks the graph.

This module holds what backends must agree on, as plain Python a backend can call or mirror:
name normalisation, relation payloads for :class:`~lightmem_hookspecs.SearchFilter`, the
validity interval test, how contradicted relations are closed (:func:`close_contradicted`),
how a bounded walk ranks entries (:func:`walk`) and how many entries an entity is linked to
(:func:`entry_counts`).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs

from .types import Scope, SearchFilter, _opt_ts

_NON_WORD = re.compile(r"[^\w]+", re.UNICODE)
_LEADING_ARTICLE = re.compile(r"^(the|a|an)\s+")


def normalize_name(name: str) -> str:
    """The form entity names and aliases are compared in.

    Unicode NFKC, case-folded, possessive ``'s`` dropped, punctuation turned into spaces,
    whitespace collapsed, a leading English article dropped: ``"The  Golden-Gate Bridge's"``
    and ``"golden gate bridge"`` compare equal.
    """
    text = unicodedata.normalize("NFKC", name).casefold()
    text = re.sub(r"['\u2019]s\b", "", text)
    text = _NON_WORD.sub(" ", text).strip()
    return _LEADING_ARTICLE.sub("", text)


def _digest(*parts: Any) -> str:
    return hashlib.blake2b("\x1f".join(str(p) for p in parts).encode(), digest_size=16).hexdigest()


def entity_id(scope: Scope, name: str) -> str:
    """The id the core gives a new entity: stable for a scope and a normalised name."""
    return _digest("entity", scope.user_id, scope.agent_id, scope.run_id, normalize_name(name))


def relation_id(entry_id: str, subject: str, relation: str, object: str) -> str:
    """The id of a relation: stable for its source entry, its entity ids and its label."""
    return _digest("relation", entry_id, subject, relation, object)


def _strings(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


def _aliases(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(a for a in value if a and a.strip()))


@attrs.frozen
class Entity:
    """A node: one person, place, thing, date or number within one scope.

    ``name`` is the canonical (first seen) spelling; ``aliases`` the other spellings that
    resolve to it (``"Caro"``, ``"Mrs. Smith"``). Names and aliases are compared after
    :func:`normalize_name`. ``kind`` is informative (``"person"``, ``"date"``, ``"number"``,
    ``"thing"``, or whatever the extractor said).
    """

    id: str
    name: str
    scope: Scope = attrs.field(factory=Scope)
    aliases: tuple[str, ...] = attrs.field(default=(), converter=_aliases)
    kind: str | None = None

    def names(self) -> tuple[str, ...]:
        """The normalised name and aliases: what :meth:`GraphMemory.resolve` matches."""
        return tuple(dict.fromkeys(normalize_name(n) for n in (self.name, *self.aliases)))


def merge_entity(stored: Entity, incoming: Entity) -> Entity:
    """One entity from two with the same id: the stored name stays, every other spelling of
    either becomes an alias (each normalised form once), the stored kind unless it had none."""
    seen = {normalize_name(stored.name)}
    aliases = []
    for alias in (*stored.aliases, incoming.name, *incoming.aliases):
        key = normalize_name(alias)
        if key and key not in seen:
            seen.add(key)
            aliases.append(alias)
    return attrs.evolve(stored, aliases=tuple(aliases), kind=stored.kind or incoming.kind)


@attrs.frozen
class Relation:
    """A directed edge ``subject -relation-> object`` taken from one memory entry.

    ``subject`` and ``object`` are entity ids; ``subject_name`` / ``object_name`` the words the
    source used. ``fact`` is the sentence it was read from; ``entry_id`` and ``message_ids`` its
    provenance. ``valid_from`` is the time stamp of its source (epoch seconds; ``None``: unknown,
    taken as "always"). ``exclusive`` relations hold one object per subject at a time: a newer
    one with the same scope, subject and label but another object closes the older one, which
    then gets ``valid_until`` (the newer one's ``valid_from``), ``superseded_at`` (when the
    backend closed it, epoch seconds) and ``superseded_by`` (the newer relation's id). Backends
    set those three fields; the core leaves them ``None``. Non-exclusive relations (``friend_of``,
    co-occurrence) never close each other.
    """

    id: str
    subject: str
    relation: str
    object: str
    entry_id: str
    fact: str = ""
    subject_name: str = ""
    object_name: str = ""
    message_ids: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    scope: Scope = attrs.field(factory=Scope)
    speaker: str | None = None
    topic_id: int | None = None
    valid_from: float | None = attrs.field(default=None, converter=_opt_ts)
    valid_until: float | None = attrs.field(default=None, converter=_opt_ts)
    superseded_at: float | None = attrs.field(default=None, converter=_opt_ts)
    superseded_by: str | None = None
    exclusive: bool = False

    def payload(self) -> dict[str, Any]:
        """The fields :meth:`SearchFilter.matches` reads; ``time_stamp`` is ``valid_from``."""
        return {
            **self.scope.as_dict(),
            "speaker": self.speaker,
            "topic_id": self.topic_id,
            "time_stamp": self.valid_from,
        }

    def other(self, entity: str) -> str:
        """The entity at the other end from ``entity``."""
        return self.object if entity == self.subject else self.subject

    def describe(self) -> str:
        """``"Caroline -lives_in-> Sweden"``."""
        subject, obj = self.subject_name or self.subject, self.object_name or self.object
        return f"{subject} -{self.relation}-> {obj}"


@attrs.frozen
class Validity:
    """Which relations count as true for a query.

    A relation is valid on ``[valid_from, valid_until)`` (a missing end is open, a missing start
    is "always"). ``at``: valid at that instant ("as of"). ``start`` / ``end``: valid at some time
    in ``[start, end)`` ("where did she live in 2022?"). ``current``: not closed. Fields combine
    with AND; an empty ``Validity()`` admits every relation.
    """

    at: float | None = attrs.field(default=None, converter=_opt_ts)
    start: float | None = attrs.field(default=None, converter=_opt_ts)
    end: float | None = attrs.field(default=None, converter=_opt_ts)
    current: bool = False

    def admits(self, relation: Relation) -> bool:
        begin, until = relation.valid_from, relation.valid_until
        if self.current and until is not None:
            return False
        if self.at is not None:
            if begin is not None and begin > self.at:
                return False
            if until is not None and until <= self.at:
                return False
        if self.end is not None and begin is not None and begin >= self.end:
            return False
        return not (self.start is not None and until is not None and until <= self.start)


def usable(relation: Relation, filter: SearchFilter | None, validity: Validity | None) -> bool:
    """Whether a walk may return or pass through ``relation``.

    Every field of ``filter`` applies to the relation as :meth:`SearchFilter.matches` defines
    it (``exclude_ids`` against ``entry_id``, time bounds against ``valid_from``), and
    ``validity`` must admit it.
    """
    if filter is not None and not filter.matches(relation.entry_id, relation.payload()):
        return False
    return validity is None or validity.admits(relation)


def usable_check(
    filter: SearchFilter | None, validity: Validity | None
) -> Callable[[Relation], bool]:
    """:func:`usable` with ``filter`` and ``validity`` fixed, compiled once for a whole walk."""
    f = filter or SearchFilter()
    wanted = [(k, getattr(f, k)) for k in ("user_id", "agent_id", "run_id")]
    scope = [(k, v) for k, v in wanted if v is not None]
    lower = [(b, strict) for b, strict in ((f.time_gt, True), (f.time_gte, False)) if b is not None]
    upper = [(b, strict) for b, strict in ((f.time_lt, True), (f.time_lte, False)) if b is not None]
    excluded, speaker, topic = f.exclude_ids, f.speaker, f.topic_id
    admits = None if validity is None or validity == Validity() else validity.admits

    def check(rel: Relation) -> bool:
        if excluded and rel.entry_id in excluded:
            return False
        for key, wanted in scope:
            if getattr(rel.scope, key) != wanted:
                return False
        if speaker is not None and rel.speaker != speaker:
            return False
        if topic is not None and rel.topic_id != topic:
            return False
        if lower or upper:
            ts = rel.valid_from
            if ts is None:
                return False
            for bound, strict in lower:
                if not (ts > bound if strict else ts >= bound):
                    return False
            for bound, strict in upper:
                if not (ts < bound if strict else ts <= bound):
                    return False
        return admits is None or admits(rel)

    return check


def entry_counts(
    entity_ids: Sequence[str],
    relations_of: Callable[[Sequence[str]], Mapping[str, Sequence[Relation]]],
    *,
    filter: SearchFilter | None = None,
) -> dict[str, int]:
    """For each entity id, the number of distinct entries whose :func:`usable` relations touch
    it (either direction); an unknown entity counts 0. How specific an entity is: a speaker of
    every entry or a word said everywhere touches most entries, a rare name a few.

    ``relations_of`` is as for :func:`walk`.
    """
    passes = usable_check(filter, None)
    ids = list(dict.fromkeys(entity_ids))
    touching = relations_of(ids) if ids else {}
    return {e: len({r.entry_id for r in touching.get(e, ()) if passes(r)}) for e in ids}


def scope_matches(scope: Scope, filter: SearchFilter | None) -> bool:
    """Whether an entity of ``scope`` passes the scope fields of ``filter`` (exact equality)."""
    if filter is None:
        return True
    for key, value in scope.as_dict().items():
        wanted = getattr(filter, key)
        if wanted is not None and value != wanted:
            return False
    return True


def close_contradicted(
    relations: Sequence[Relation], now: float
) -> dict[str, tuple[float | None, str | None]]:
    """The closing of one group of exclusive relations (same scope, subject and label).

    Orders the group by ``valid_from`` (unknown first), then id, and closes each relation at the
    ``valid_from`` of the first later one with another object. Returns, per relation id, the
    ``(valid_until, superseded_by)`` it must have; a backend that changes a relation from open
    to closed stamps ``superseded_at = now``, one that keeps it closed keeps its stamp, one that
    reopens it clears it. The result does not depend on the order relations arrived in.
    """
    ordered = sorted(relations, key=lambda r: (r.valid_from is not None, r.valid_from or 0.0, r.id))
    out: dict[str, tuple[float | None, str | None]] = {}
    for i, rel in enumerate(ordered):
        closer = next((later for later in ordered[i + 1 :] if later.object != rel.object), None)
        out[rel.id] = (None, None) if closer is None else (closer.valid_from, closer.id)
    return out


def apply_closing(group: Sequence[Relation], now: float) -> list[Relation]:
    """The relations of ``group`` whose validity :func:`close_contradicted` changes, changed."""
    plan = close_contradicted(group, now)
    changed = []
    for rel in group:
        until, by = plan[rel.id]
        if (rel.valid_until, rel.superseded_by) == (until, by):
            continue
        stamp = None if by is None else (rel.superseded_at if rel.superseded_by else now)
        changed.append(attrs.evolve(rel, valid_until=until, superseded_by=by, superseded_at=stamp))
    return changed


def closing_key(relation: Relation) -> tuple[Any, ...]:
    """Relations with equal keys form one :func:`close_contradicted` group."""
    scope = relation.scope
    return (scope.user_id, scope.agent_id, scope.run_id, relation.subject, relation.relation)


@attrs.frozen
class GraphHit:
    """A memory entry reached by a walk: its graph score and the path that reached it.

    ``path`` runs from a seed entity to (and including) a relation taken from ``entry_id``.
    """

    entry_id: str
    score: float
    path: tuple[Relation, ...] = ()
    seed: str = ""


def fan_out_order(relation: Relation) -> tuple[Any, ...]:
    """Sort key of the relations a walk follows from one entity: newest first, then by id."""
    known = relation.valid_from is not None
    return (not known, -(relation.valid_from or 0.0), relation.id)


def walk(
    seeds: Sequence[str],
    relations_of: Callable[[Sequence[str]], Mapping[str, Sequence[Relation]]],
    *,
    limit: int,
    hops: int,
    fan_out: int,
    filter: SearchFilter | None = None,
    validity: Validity | None = None,
    ordered: bool = False,
) -> list[GraphHit]:
    """The bounded walk every backend's ``search`` returns the result of.

    ``relations_of(entity_ids)`` gives every stored relation touching each entity (either
    direction); with ``ordered`` it gives them in :func:`fan_out_order` already, and the walk
    reads only as many as it takes (a backend that keeps adjacency sorted saves the sort of a
    hub's relations on every visit).

    From each seed, breadth first up to ``hops`` relations deep, every entity reached follows
    at most ``fan_out`` of its :func:`usable` relations not yet taken, in
    :func:`fan_out_order`. A relation taken at depth ``d`` (1 = touching the seed) gives its
    entry ``1 / d`` for that seed, the best depth per seed counting; an entry's score is the sum
    over seeds. Results: best score first, then the newest relation, then entry id; at most
    ``limit``. Each hit carries the path of its best (first found) relation from the seed it
    scored most for.
    """
    if limit < 1 or hops < 1 or fan_out < 1:
        return []
    best: dict[str, dict[str, tuple[float, tuple[Relation, ...]]]] = {}
    passes = usable_check(filter, validity)
    for seed in dict.fromkeys(seeds):
        visited = {seed}
        taken: set[str] = set()
        frontier: list[tuple[str, tuple[Relation, ...]]] = [(seed, ())]
        for depth in range(1, hops + 1):
            touching = relations_of([e for e, _ in frontier])
            following: list[tuple[str, tuple[Relation, ...]]] = []
            for entity, path in frontier:
                candidates = touching.get(entity, ())
                if not ordered:
                    candidates = sorted(candidates, key=fan_out_order)
                options: list[Relation] = []
                for r in candidates:
                    if r.id not in taken and passes(r):
                        options.append(r)
                        if len(options) == fan_out:
                            break
                for rel in options:
                    taken.add(rel.id)
                    route = (*path, rel)
                    per_seed = best.setdefault(rel.entry_id, {})
                    if seed not in per_seed or per_seed[seed][0] < 1.0 / depth:
                        per_seed[seed] = (1.0 / depth, route)
                    nxt = rel.other(entity)
                    if nxt not in visited:
                        visited.add(nxt)
                        following.append((nxt, route))
            frontier = following
            if not frontier:
                break
    hits = []
    for entry, per_seed in best.items():
        score = sum(s for s, _ in per_seed.values())
        seed, (_, path) = max(per_seed.items(), key=lambda kv: (kv[1][0], kv[0]))
        hits.append(GraphHit(entry_id=entry, score=score, path=path, seed=seed))
    hits.sort(key=lambda h: (-h.score, fan_out_order(h.path[-1]), h.entry_id))
    return hits[:limit]
