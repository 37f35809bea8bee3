"""Graph memory in the core: entities and relations built from entries, and the graph retriever.

**Building.** :class:`GraphBuilder` turns stored entries into :class:`~lightmem_hookspecs.Entity`
and :class:`~lightmem_hookspecs.Relation` values and hands them to the configured
``graph_memory`` backend, one ``index`` call per batch. An entry's relations come from:

- the extraction call, when an LLM is configured: each fact may carry relations
  ``{"subject", "relation", "object", "single"}``, kept in the entry's metadata under
  :data:`RELATIONS_KEY` (so ``reindex`` rebuilds the graph from the record store, with no LLM
  call). ``single`` marks an exclusive relation (one object at a time: ``lives_in``);
- otherwise the **no-LLM fallback** (:func:`fallback_relations`), from the entry's own text: the
  named entities (runs of capitalised words that are not sentence-initial function words),
  dates (``7 May 2023``, ``May 2023``, ``2022``) and numbers with their unit (``3 kids``) it
  contains, each pair of which ``co_occurs_with`` in that entry (at most
  :data:`MAX_FALLBACK_ITEMS`), and its **topics** (:func:`topic_mentions`: content words,
  roughly stemmed, at most :data:`MAX_TOPICS`; entities named ``"camp (topic)"``). The speaker
  (a ``person`` entity) ``mentions`` each of them (without a speaker, the first of them
  ``co_occurs_with`` the topics). None is exclusive. The names of the
  conversation's speakers are not mentions: in a dialogue "Thanks, Mel!" speaks to Mel.

**Entity dedup.** Names are compared after :func:`~lightmem_hookspecs.normalize_name`; a name
that matches a stored entity's name or alias in the same scope becomes that entity. A new name
of a person or thing whose embedding (the configured text embedder) has a cosine of at least
``similarity`` with a stored entity of the same scope and kind becomes an alias of it. Dates
and numbers are merged only by normalised name.

**Retrieval.** :func:`graph_search` weighs entities by how specific they are: an entity linked
to ``c`` of ``n`` entries weighs ``log(1 + n / c)`` (a speaker of half the entries little, a rare
name much). It scores entries by the entities they are linked to: those the query names (its
capitalised spans and every 1-3 word n-gram, resolved by name or alias; topics are not, the
lexical retriever matches the query's words), each walked from (``hops``, ``fan_out``; a depth
``d`` counts ``1/d``) unless it is a hub (:data:`HUB_SHARE`), and those of the other retrievers'
``expand`` best hits (:data:`FEEDBACK_WEIGHT` times the share of the other best hits linked to
them), which pull up the entries that share a rare entity with the best hits: the other
evidence of a multi-hop question. Rare ones of them (:data:`RARE_SHARE`) also reach entries no
other retriever found. Time bounds of the filter become relation validity (a relation valid at
some time in the range counts, "where did she live in 2022?"); without time bounds only
relations that are still valid count.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Collection, Container, Iterable, Mapping, Sequence
from typing import Any

import attrs
from lightmem_hookspecs import (
    Entity,
    GraphHit,
    MemoryEntry,
    Relation,
    Scope,
    SearchFilter,
    Validity,
    normalize_name,
)
from lightmem_hookspecs import graph as g

from .language import ENGLISH_CHAT_STOPWORDS as _CHAT_STOPWORDS

#: Entry metadata key of the relations the extraction call returned for a fact.
RELATIONS_KEY = "relations"
#: At most this many named entities, dates and numbers per entry feed the fallback.
MAX_FALLBACK_ITEMS = 6
#: At most this many topics (content words) per entry feed the fallback.
MAX_TOPICS = 16
#: Entity kinds the fallback gives: the speaker of an entry, and the words it is about.
PERSON, TOPIC = "person", "topic"
#: How much an entity of the best hits counts, against an entity the query names.
FEEDBACK_WEIGHT = 0.3
#: A named entity linked to more than this share of entries (and more than
#: :data:`HUB_MIN_ENTRIES`) is a hub: it weighs the entries it touches but is not walked from.
HUB_SHARE = 0.2
HUB_MIN_ENTRIES = 10
#: An entity of the best hits linked to at most this share of entries (or at most
#: :data:`RARE_MIN_ENTRIES`) also reaches entries beyond the other retrievers' candidates.
RARE_SHARE = 0.02
RARE_MIN_ENTRIES = 3

_MONTHS = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
]
_MONTH = r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|" \
    r"Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"  # fmt: skip
_DATE = re.compile(
    rf"\b(?:(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?({_MONTH})\.?,?\s+(\d{{4}})"
    rf"|({_MONTH})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+(\d{{4}})"
    rf"|({_MONTH})\.?,?\s+(\d{{4}})"
    rf"|(?:in|since|of|from|until|by)\s+((?:19|20)\d{{2}}))\b",
    re.IGNORECASE,
)
_NUMBER = re.compile(
    r"\b(\d+(?:[.,]\d+)?|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|"
    r"twenty|thirty|forty|fifty|hundred)\s+([a-z]{3,}s)\b",
    re.IGNORECASE,
)
_CAPITALISED = re.compile(
    r"\b[A-Z][\w'\u2019&-]*(?:\s+(?:(?:of|the|de|la|van|von|for)\s+){0,2}[A-Z][\w'\u2019&-]*)*"
)
_SENTENCE_END = re.compile(r"[.!?:;\"\u201c\u201d()]\s*$")
#: Capitalised words that name nothing: sentence starters, pronouns, interjections, weekdays.
_NOT_NAMES = frozenset(
    [
        "i",
        "i'm",
        "i've",
        "i'd",
        "i'll",
        "im",
        "ive",
        "a",
        "an",
        "the",
        "this",
        "that",
        "these",
        "those",
        "it",
        "it's",
        "its",
        "he",
        "she",
        "they",
        "we",
        "you",
        "me",
        "my",
        "mine",
        "our",
        "your",
        "his",
        "her",
        "their",
        "them",
        "us",
        "what",
        "when",
        "where",
        "who",
        "whom",
        "whose",
        "why",
        "how",
        "which",
        "yes",
        "yeah",
        "yep",
        "no",
        "nope",
        "not",
        "oh",
        "ooh",
        "ah",
        "aw",
        "aww",
        "wow",
        "hey",
        "hi",
        "hello",
        "bye",
        "goodbye",
        "thanks",
        "thank",
        "ok",
        "okay",
        "sure",
        "great",
        "good",
        "nice",
        "cool",
        "awesome",
        "amazing",
        "congrats",
        "congratulations",
        "lol",
        "haha",
        "hahaha",
        "hmm",
        "well",
        "so",
        "and",
        "but",
        "or",
        "if",
        "then",
        "because",
        "also",
        "just",
        "really",
        "very",
        "maybe",
        "definitely",
        "absolutely",
        "totally",
        "there",
        "here",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "am",
        "do",
        "does",
        "did",
        "have",
        "has",
        "had",
        "can",
        "could",
        "will",
        "would",
        "shall",
        "should",
        "may",
        "might",
        "must",
        "let",
        "lets",
        "let's",
        "please",
        "sorry",
        "glad",
        "happy",
        "same",
        "true",
        "anyway",
        "btw",
        "omg",
        "all",
        "any",
        "some",
        "every",
        "each",
        "both",
        "many",
        "much",
        "more",
        "most",
        "other",
        "another",
        "such",
        "only",
        "own",
        "in",
        "on",
        "at",
        "to",
        "for",
        "from",
        "by",
        "with",
        "about",
        "after",
        "before",
        "during",
        "since",
        "until",
        "as",
        "of",
        "into",
        "over",
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
        "today",
        "tomorrow",
        "yesterday",
        "tonight",
        "mr",
        "mrs",
        "ms",
        "dr",
    ]
)
_STOP_NGRAM = _NOT_NAMES | frozenset(
    [
        "did",
        "do",
        "does",
        "go",
        "went",
        "like",
        "likes",
        "liked",
        "live",
        "lives",
        "lived",
        "friend",
        "friends",
        "time",
        "year",
        "day",
        "week",
        "month",
        "kind",
        "thing",
        "things",
        "people",
        "person",
        "one",
        "two",
        "three",
    ]
)
_WORD = re.compile(r"[\w'\u2019]+", re.UNICODE)


@attrs.frozen
class GraphSettings:
    """How the graph is built and walked (``graph`` in the configuration)."""

    hops: int = 2
    fan_out: int = 5
    similarity: float | None = 0.9
    fallback: bool = True
    expand: int = 5


@attrs.frozen
class Mention:
    """Something an entry names: its surface form and kind (person, thing, date, number)."""

    name: str
    kind: str


@attrs.frozen
class Triple:
    """A relation before entity resolution: names, label, whether exclusive, its fact."""

    subject: Mention
    relation: str
    object: Mention
    exclusive: bool = False
    fact: str = ""


def _speaker(entry: MemoryEntry) -> str | None:
    return entry.speaker_name or entry.speaker_id


def _label(text: str) -> str:
    words = re.findall(r"[a-z0-9]+", text.lower())
    return "_".join(words) or "related_to"


def date_mentions(text: str) -> list[str]:
    """The dates ``text`` names, as ``7 May 2023``, ``May 2023`` or ``2023``."""
    found = []
    for m in _DATE.finditer(text):
        if m.group(1):
            day, month, year = m.group(1), m.group(2), m.group(3)
        elif m.group(4):
            day, month, year = m.group(5), m.group(4), m.group(6)
        elif m.group(7):
            day, month, year = None, m.group(7), m.group(8)
        else:
            day, month, year = None, None, m.group(9)
        if month is not None:
            full = next(name for name in _MONTHS if name.startswith(month.lower()[:3]))
            month = full.capitalize()
        found.append(" ".join(p for p in (day and str(int(day)), month, year) if p))
    return found


def number_mentions(text: str) -> list[str]:
    """Counts with their unit (``3 kids``, ``two dogs``), lower-cased."""
    return [f"{m.group(1).lower()} {m.group(2).lower()}" for m in _NUMBER.finditer(text)]


def name_mentions(text: str, known: Container[str] = ()) -> list[str]:
    """Runs of capitalised words that are names, not sentence starters or function words.

    A single capitalised word that starts a sentence ("Keep", "Sounds", "Gina") counts only if
    the text also capitalises it mid-sentence or its normalised form is in ``known`` (names
    already seen mid-sentence); words with a contraction ("You're") never count.
    """
    found = []
    mid_sentence: set[str] = set()
    candidates = []
    for m in _CAPITALISED.finditer(text):
        span = m.group(0).strip(" -&'\u2019")
        words = span.split()
        while words and words[0].lower().strip("'\u2019") in _NOT_NAMES:
            words.pop(0)
        while words and words[-1].lower() in ("of", "the", "for", "de", "la"):
            words.pop()
        if not words:
            continue
        span = re.sub(r"['\u2019]s$", "", " ".join(words))
        if span.lower() in _NOT_NAMES or span.lower() in _MONTHS or len(span) < 2:
            continue
        if re.search(r"['\u2019]", span):
            continue
        starts = m.start() == 0 or bool(_SENTENCE_END.search(text[: m.start()]))
        single_opener = starts and len(words) == 1 and span == m.group(0).strip(" -&'\u2019")
        if not starts:
            mid_sentence.add(span)
        candidates.append((span, single_opener))
    for span, single_opener in candidates:
        if single_opener and span not in mid_sentence and normalize_name(span) not in known:
            continue
        found.append(span)
    return found


def opener_mentions(text: str) -> list[str]:
    """The sentence-opening single words :func:`name_mentions` left out for lack of evidence."""
    kept = set(name_mentions(text))
    return [w for w in name_mentions(text, known=_Everything()) if w not in kept and " " not in w]


class _Everything:
    def __contains__(self, item: object) -> bool:
        return True


def topic_mentions(text: str, exclude: Iterable[str] = ()) -> list[str]:
    """The words ``text`` is about, in order, each once: words of four letters or more that are
    not function words or chat filler, outside the names, dates and counts of the text, reduced
    to a rough stem (``camping``, ``camped`` -> ``camp``); ``exclude``: names to leave out."""
    rest = _DATE.sub(" ", _NUMBER.sub(" ", text))
    for name in sorted(name_mentions(rest), key=len, reverse=True):
        rest = rest.replace(name, " ")
    skip = {_stem(w) for name in exclude for w in normalize_name(name).split()}
    found: dict[str, None] = {}
    for word in _WORD.findall(rest.casefold()):
        word = word.strip("'\u2019")
        if len(word) < 4 or not word.isalpha() or word in _CHAT_STOPWORDS or word in _STOP_NGRAM:
            continue
        stem = _stem(word)
        if stem not in skip:
            found.setdefault(stem, None)
    return list(found)


def _stem(word: str) -> str:
    """A rough stem, enough to make forms of a word meet: ``stories`` -> ``story``, ``boxes`` ->
    ``box``, ``kids`` -> ``kid``, ``camping`` / ``camped`` -> ``camp``."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith(("ches", "shes")) or (len(word) > 4 and word[-3:] in ("ses", "xes", "zes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    for suffix in ("ing", "ed"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def topic_name(word: str) -> str:
    """The name of a topic entity: ``"camp (topic)"``, never the same entity as a name."""
    return f"{word} (topic)"


def fallback_relations(
    entry: MemoryEntry, known: Collection[str] = (), speakers: Collection[str] = ()
) -> list[Triple]:
    """The no-LLM relations of ``entry`` (see the module documentation); ``known``: normalised
    names a sentence-opening word may be (see :func:`name_mentions`); ``speakers``: names of
    the conversation's speakers, which are not mentions (in a dialogue, "Thanks, Mel!" speaks
    to Mel, it is not about her)."""
    text = entry.memory
    items: dict[str, Mention] = {}
    for name in date_mentions(text):
        items.setdefault(normalize_name(name), Mention(name, "date"))
    names = name_mentions(_DATE.sub(" ", text), known)
    for name in names:
        items.setdefault(normalize_name(name), Mention(name, "thing"))
    for name in number_mentions(text):
        items.setdefault(normalize_name(name), Mention(name, "number"))
    speaker = _speaker(entry)
    people = [p for p in (speaker, *speakers) if p]
    for person in people:
        items.pop(normalize_name(person), None)
    chosen = [m for key, m in items.items() if key][:MAX_FALLBACK_ITEMS]
    found = topic_mentions(text, [*names, *people])[:MAX_TOPICS]
    topics = [Mention(topic_name(t), TOPIC) for t in found]
    triples = []
    for i, first in enumerate(chosen):
        for second in chosen[i + 1 :]:
            triples.append(Triple(first, "co_occurs_with", second, fact=text))
    if speaker and normalize_name(speaker):
        hub, label, linked = Mention(speaker, PERSON), "mentions", [*chosen, *topics]
    elif chosen or topics:
        hub, label, linked = [*chosen, *topics][0], "co_occurs_with", topics
    else:
        return triples
    for item in linked:
        if item is not hub:
            triples.append(Triple(hub, label, item, fact=text))
    return triples


def llm_relations(entry: MemoryEntry) -> list[Triple] | None:
    """The relations the extraction call gave ``entry``, or ``None`` if it has none recorded."""
    raw = entry.metadata.get(RELATIONS_KEY) if entry.metadata else None
    if not isinstance(raw, list):
        return None
    triples = []
    for item in raw:
        if not isinstance(item, Mapping):
            continue
        subject = str(item.get("subject") or "").strip()
        obj = str(item.get("object") or "").strip()
        label = _label(str(item.get("relation") or ""))
        if not subject or not obj or not normalize_name(subject) or not normalize_name(obj):
            continue
        triples.append(
            Triple(
                Mention(subject, "thing"),
                label,
                Mention(obj, "thing"),
                exclusive=bool(item.get("single")),
                fact=entry.memory,
            )
        )
    return triples


class GraphBuilder:
    """Builds and indexes the graph of entries; see the module documentation for the rules."""

    def __init__(
        self, graph: Any, *, embedder: Any = None, settings: GraphSettings | None = None
    ) -> None:
        self.graph = graph
        self.embedder = embedder
        self.settings = settings or GraphSettings()
        self._vectors: dict[Scope, dict[str, tuple[Entity, Sequence[float]]]] = {}

    def triples(
        self, entry: MemoryEntry, known: Collection[str] = (), speakers: Collection[str] = ()
    ) -> list[Triple]:
        found = llm_relations(entry)
        if found is None:
            found = fallback_relations(entry, known, speakers) if self.settings.fallback else []
        return found

    def _speakers(self, entries: Sequence[MemoryEntry]) -> dict[Scope, set[str]]:
        """Per scope, the speakers a batch's fallback entries must not count as mentions: the
        batch's own speakers and the names it uses that are speakers in the graph already."""
        if not self.settings.fallback:
            return {}
        speakers: dict[Scope, set[str]] = {}
        names: dict[Scope, set[str]] = {}
        for entry in entries:
            if llm_relations(entry) is not None:
                continue
            speaker = _speaker(entry)
            if speaker:
                speakers.setdefault(entry.scope, set()).add(speaker)
            said = name_mentions(entry.memory, known=_Everything())
            names.setdefault(entry.scope, set()).update(said)
        for scope, used in names.items():
            wanted = used - speakers.get(scope, set())
            if not wanted:
                continue
            for entity in self.graph.resolve(sorted(wanted), filter=_scope_filter(scope)):
                if entity.scope == scope and entity.kind == PERSON:
                    speakers.setdefault(scope, set()).add(entity.name)
        return speakers

    def _known_openers(self, entries: Sequence[MemoryEntry]) -> dict[Scope, set[str]]:
        """Per scope, the sentence-opening words of ``entries`` that are names: seen
        mid-sentence in this batch, or already an entity of the graph."""
        if not self.settings.fallback:
            return {}
        openers: dict[Scope, set[str]] = {}
        named: dict[Scope, set[str]] = {}
        for entry in entries:
            if llm_relations(entry) is not None:
                continue
            text = _DATE.sub(" ", entry.memory)
            words = openers.setdefault(entry.scope, set())
            words.update(normalize_name(w) for w in opener_mentions(text))
            named.setdefault(entry.scope, set()).update(
                normalize_name(n) for n in name_mentions(text)
            )
        known: dict[Scope, set[str]] = {}
        for scope, words in openers.items():
            found = named.get(scope, set()) & words
            rest = words - found
            if rest:
                for entity in self.graph.resolve(sorted(rest), filter=_scope_filter(scope)):
                    if entity.scope == scope:
                        found |= set(entity.names()) & rest
            known[scope] = found
        return known

    def index(self, entries: Sequence[MemoryEntry]) -> int:
        """Index ``entries`` (replacing what the graph had for them); returns relations stored."""
        if not entries:
            return 0
        known = self._known_openers(entries)
        speakers = self._speakers(entries)
        per_entry = [
            (entry, self.triples(entry, known.get(entry.scope, ()), speakers.get(entry.scope, ())))
            for entry in entries
        ]
        resolved = self._resolve(per_entry)
        entities: dict[str, Entity] = {}
        relations: dict[str, Relation] = {}
        for entry, triples in per_entry:
            for triple in triples:
                subject = resolved[(entry.scope, normalize_name(triple.subject.name))]
                obj = resolved[(entry.scope, normalize_name(triple.object.name))]
                if subject.id == obj.id:
                    continue
                for ent, mention in ((subject, triple.subject), (obj, triple.object)):
                    surface = Entity(ent.id, mention.name, ent.scope, kind=ent.kind)
                    entities[ent.id] = g.merge_entity(entities.get(ent.id, ent), surface)
                rid = g.relation_id(entry.id, subject.id, triple.relation, obj.id)
                relations[rid] = Relation(
                    id=rid,
                    subject=subject.id,
                    relation=triple.relation,
                    object=obj.id,
                    entry_id=entry.id,
                    fact=triple.fact,
                    subject_name=triple.subject.name,
                    object_name=triple.object.name,
                    message_ids=entry.source_message_ids,
                    scope=entry.scope,
                    speaker=_speaker(entry),
                    topic_id=entry.topic_id,
                    valid_from=entry.time_stamp,
                    exclusive=triple.exclusive,
                )
        self.graph.index([e.id for e in entries], list(entities.values()), list(relations.values()))
        return len(relations)

    def _resolve(
        self, per_entry: Sequence[tuple[MemoryEntry, Sequence[Triple]]]
    ) -> dict[tuple[Scope, str], Entity]:
        """Map each (scope, normalised name) mentioned to an entity: stored, similar, or new."""
        wanted: dict[Scope, dict[str, Mention]] = {}
        for entry, triples in per_entry:
            names = wanted.setdefault(entry.scope, {})
            for triple in triples:
                for mention in (triple.subject, triple.object):
                    names.setdefault(normalize_name(mention.name), mention)
        out: dict[tuple[Scope, str], Entity] = {}
        for scope, mentions in wanted.items():
            exact = _scope_filter(scope)
            for entity in self.graph.resolve(list(mentions), filter=exact):
                if entity.scope != scope:
                    continue
                for key in entity.names():
                    if key in mentions:
                        out[(scope, key)] = entity
            new = {k: m for k, m in mentions.items() if (scope, k) not in out}
            similar = self._similar(scope, new)
            for key, mention in new.items():
                entity = similar.get(key) or Entity(
                    g.entity_id(scope, mention.name), mention.name, scope, kind=mention.kind
                )
                out[(scope, key)] = entity
        return out

    def _similar(self, scope: Scope, new: Mapping[str, Mention]) -> dict[str, Entity]:
        """New names of people and things whose embedding matches a stored entity's."""
        threshold = self.settings.similarity
        candidates = {k: m for k, m in new.items() if m.kind in ("person", "thing")}
        if self.embedder is None or threshold is None or not candidates:
            return {}
        import numpy as np

        known = self._vectors.setdefault(scope, {})
        stored = [
            e
            for e in self.graph.entities(filter=_scope_filter(scope))
            if e.scope == scope and e.kind in ("person", "thing") and e.id not in known
        ]
        texts = [e.name for e in stored] + [m.name for m in candidates.values()]
        vectors = np.asarray(self.embedder.embed(texts), dtype=np.float32)
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        for entity, vector in zip(stored, vectors, strict=False):
            known[entity.id] = (entity, vector)
        out: dict[str, Entity] = {}
        pool = list(known.values())
        matrix = np.stack([v for _, v in pool]) if pool else np.zeros((0, vectors.shape[1]))
        for (key, mention), vector in zip(candidates.items(), vectors[len(stored) :], strict=True):
            sims = matrix @ vector
            best = int(np.argmax(sims)) if len(pool) else -1
            if best >= 0 and float(sims[best]) >= threshold:
                out[key] = pool[best][0]
                continue
            entity = Entity(
                g.entity_id(scope, mention.name), mention.name, scope, kind=mention.kind
            )
            known[entity.id] = (entity, vector)
            pool.append((entity, vector))
            matrix = np.vstack([matrix, vector[None, :]])
        return out

    def forget(self) -> None:
        """Drop cached entity embeddings (after a rebuild)."""
        self._vectors.clear()


def _scope_filter(scope: Scope) -> SearchFilter:
    return SearchFilter(user_id=scope.user_id, agent_id=scope.agent_id, run_id=scope.run_id)


def query_names(query: str) -> list[str]:
    """What a query may name: its capitalised spans and every 1-3 word n-gram."""
    words = [w.strip("'\u2019") for w in _WORD.findall(query)]
    names = list(name_mentions(query)) + date_mentions(query)
    for n in (3, 2, 1):
        for i in range(len(words) - n + 1):
            gram = words[i : i + n]
            if n == 1 and (gram[0].lower() in _STOP_NGRAM or len(gram[0]) < 3):
                continue
            if gram[0].lower() in _NOT_NAMES or gram[-1].lower() in _NOT_NAMES:
                continue
            names.append(" ".join(gram))
    return list(dict.fromkeys(names))


def validity_of(search_filter: SearchFilter) -> tuple[SearchFilter, Validity]:
    """Split the filter: time bounds become relation validity, the rest stays a filter."""
    start = search_filter.time_gte if search_filter.time_gte is not None else search_filter.time_gt
    end = search_filter.time_lt
    if search_filter.time_lte is not None:
        end = search_filter.time_lte + 1e-6
    rest = attrs.evolve(search_filter, time_gt=None, time_gte=None, time_lt=None, time_lte=None)
    if start is None and end is None:
        return rest, Validity(current=True)
    return rest, Validity(start=start, end=end)


def graph_search(
    graph: Any,
    query: str,
    *,
    limit: int,
    filter: SearchFilter | None = None,
    settings: GraphSettings | None = None,
    candidates: Sequence[str] = (),
    total: int | None = None,
) -> list[GraphHit]:
    """The graph retriever: entries linked to the entities ``query`` names and to the entities
    of the best ``candidates`` (the other retrievers' fused hits, best first), weighted by how
    specific each entity is; ``total``: entries in the graph (for that weight). See the module
    documentation and docs/graph.md."""
    settings = settings or GraphSettings()
    search_filter = filter or SearchFilter()
    scope_only = SearchFilter(
        user_id=search_filter.user_id, agent_id=search_filter.agent_id, run_id=search_filter.run_id
    )
    rest, validity = validity_of(search_filter)
    named = {e.id for e in graph.resolve(query_names(query), filter=scope_only) if e.kind != TOPIC}
    order = list(dict.fromkeys(candidates))
    top = order[: settings.expand]
    feedback: Counter[str] = Counter()
    ends: dict[str, set[str]] = {}
    if top:
        for rel in graph.relations(entry_ids=top, filter=rest, validity=validity):
            ends.setdefault(rel.entry_id, set()).update((rel.subject, rel.object))
        for found in ends.values():
            feedback.update(found)
    if not named and not feedback:
        return []
    counts = graph.entry_counts(sorted(named | set(feedback)), filter=rest)
    n = max(total or 0, *counts.values(), 1)
    weight = {e: math.log(1.0 + n / max(1, c)) for e, c in counts.items()}

    # Entities the query names: walked from, unless they are hubs, by the configured walk.
    reach: dict[tuple[str, str], float] = {}
    paths: dict[str, tuple[Relation, ...]] = {}
    for seed in sorted(named):
        if counts.get(seed, 0) > max(HUB_SHARE * n, HUB_MIN_ENTRIES):
            continue
        for hit in graph.search(
            [seed],
            limit=max(limit, len(order)),
            hops=settings.hops,
            fan_out=settings.fan_out,
            filter=rest,
            validity=validity,
        ):
            reach[(seed, hit.entry_id)] = hit.score
            paths.setdefault(hit.entry_id, hit.path)
            order.append(hit.entry_id)
    # Rare entities of the best hits reach entries the other retrievers did not find.
    rare = sorted(e for e in feedback if counts[e] <= max(RARE_SHARE * n, RARE_MIN_ENTRIES))
    if rare:
        for hit in graph.search(
            rare, limit=limit, hops=1, fan_out=settings.fan_out, filter=rest, validity=validity
        ):
            order.append(hit.entry_id)
    order = list(dict.fromkeys(order))
    touching: dict[str, dict[str, Relation]] = {}
    for rel in graph.relations(entry_ids=order, filter=rest, validity=validity):
        for end in (rel.subject, rel.object):
            touching.setdefault(rel.entry_id, {}).setdefault(end, rel)
    # What an entity adds to each entry linked to it: its weight if the query names it, and a
    # share of it per best hit linked to it (a best hit's own link counts for the others only).
    share = {e: FEEDBACK_WEIGHT * weight[e] / len(top) for e in feedback}
    walked_to: dict[str, list[tuple[str, float]]] = {}
    for (seed, entry_id), depth_score in reach.items():
        walked_to.setdefault(entry_id, []).append((seed, depth_score))
    hits = []
    for position, entry_id in enumerate(order):
        linked = touching.get(entry_id, {})
        score, best, why = 0.0, 0.0, None
        own = ends.get(entry_id, ())
        for entity, rel in linked.items():
            value = weight[entity] if entity in named else 0.0
            if entity in share:
                value += share[entity] * (feedback[entity] - (entity in own))
            if value:
                score += value
                if value > best:
                    best, why = value, rel
        for seed, depth_score in walked_to.get(entry_id, ()):
            if seed not in linked:  # reached by the walk, not linked to the seed itself
                score += weight[seed] * depth_score
        if score <= 0:
            continue
        path = paths.get(entry_id) or ((why,) if why is not None else ())
        hits.append((-score, position, GraphHit(entry_id=entry_id, score=score, path=path)))
    hits.sort(key=lambda h: (h[0], h[1]))
    return [h for _, _, h in hits[:limit]]


def describe_path(path: Iterable[Relation]) -> list[str]:
    """``["Alice -friend_of-> Bob", "Bob -lives_in-> Berlin"]``."""
    return [r.describe() for r in path]


# -- inspection: `lightmem graph show` and `lightmem graph export` --------------------------------


def relation_dict(rel: Relation) -> dict[str, Any]:
    """A relation as JSON: names, label, provenance and validity (times as ISO 8601, UTC)."""
    out = attrs.asdict(rel, recurse=False)
    out["scope"] = rel.scope.as_dict()
    out["message_ids"] = list(rel.message_ids)
    for key in ("valid_from", "valid_until", "superseded_at"):
        out[key] = _iso(out[key])
    return out


def _iso(value: float | None) -> str | None:
    if value is None:
        return None
    import datetime as dt

    return dt.datetime.fromtimestamp(value, tz=dt.timezone.utc).isoformat()  # noqa: UP017


def export_json(graph: Any, *, filter: SearchFilter | None = None) -> dict[str, Any]:
    """Every entity and relation (closed ones included) of the scopes ``filter`` admits."""
    entities = sorted(graph.entities(filter=filter), key=lambda e: (e.name.lower(), e.id))
    relations = sorted(
        graph.relations(filter=filter),
        key=lambda r: (r.valid_from is None, r.valid_from or 0.0, r.id),
    )
    return {
        "entities": [
            {
                "id": e.id,
                "name": e.name,
                "aliases": list(e.aliases),
                "kind": e.kind,
                "scope": e.scope.as_dict(),
            }
            for e in entities
        ],
        "relations": [relation_dict(r) for r in relations],
    }


def export_graphml(graph: Any, *, filter: SearchFilter | None = None) -> str:
    """The graph as GraphML (entities are nodes, relations directed edges with their data)."""
    import xml.etree.ElementTree as ET

    data = export_json(graph, filter=filter)
    ns = "http://graphml.graphdrawing.org/xmlns"
    root = ET.Element("graphml", xmlns=ns)
    node_keys = ("name", "aliases", "kind", "user_id", "agent_id", "run_id")
    edge_keys = (
        "relation", "fact", "entry_id", "message_ids", "speaker", "valid_from", "valid_until",
        "superseded_at", "superseded_by", "exclusive",
    )  # fmt: skip
    for where, keys in (("node", node_keys), ("edge", edge_keys)):
        for key in keys:
            ET.SubElement(
                root, "key", id=f"{where[0]}_{key}", attrib={"for": where, "attr.name": key,
                                                             "attr.type": "string"}
            )  # fmt: skip
    body = ET.SubElement(root, "graph", id="lightmem", edgedefault="directed")

    def put(parent: Any, prefix: str, key: str, value: Any) -> None:
        if value is None or value == []:
            return
        text = "; ".join(value) if isinstance(value, list) else str(value)
        ET.SubElement(parent, "data", key=f"{prefix}_{key}").text = text

    for entity in data["entities"]:
        node = ET.SubElement(body, "node", id=entity["id"])
        for key in ("name", "aliases", "kind"):
            put(node, "n", key, entity[key])
        for key, value in entity["scope"].items():
            put(node, "n", key, value)
    for rel in data["relations"]:
        edge = ET.SubElement(
            body, "edge", id=rel["id"], source=rel["subject"], target=rel["object"]
        )
        for key in edge_keys:
            put(edge, "e", key, rel[key])
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")


def show(
    graph: Any,
    name: str,
    *,
    depth: int = 1,
    filter: SearchFilter | None = None,
    limit: int = 200,
) -> list[str]:
    """Lines describing what the graph knows around the entity called ``name``.

    One block per entity that name or alias resolves to, then each relation reached within
    ``depth`` hops, with its validity and source entry; closed relations are marked.
    """
    lines: list[str] = []
    for entity in graph.resolve([name], filter=filter):
        also = f" (also: {', '.join(entity.aliases)})" if entity.aliases else ""
        lines.append(
            f"{entity.name}{also} [{entity.kind or 'entity'}] scope {_scope(entity.scope)}"
        )
        seen: dict[str, tuple[int, Relation]] = {}
        frontier, visited = {entity.id}, {entity.id}
        for hop in range(1, max(1, depth) + 1):
            hits = graph.search(sorted(frontier), limit=limit, hops=1, fan_out=limit, filter=filter)
            found = graph.relations(entry_ids=[h.entry_id for h in hits], filter=filter)
            reached: set[str] = set()
            for rel in found:
                if rel.id in seen or not {rel.subject, rel.object} & frontier:
                    continue
                seen[rel.id] = (hop, rel)
                reached |= {rel.subject, rel.object} - visited
            visited |= reached
            frontier = reached
            if not frontier:
                break
        for hop, rel in sorted(seen.values(), key=lambda p: (p[0], p[1].valid_from or 0.0)):
            span = f"{_date(rel.valid_from)} .. {_date(rel.valid_until) if rel.valid_until else ''}"
            closed = " (superseded)" if rel.valid_until is not None else ""
            lines.append(f"{'  ' * hop}{rel.describe()}  [{span}]{closed}  entry {rel.entry_id}")
    return lines


def _scope(scope: Scope) -> str:
    parts = [f"{k}={v}" for k, v in scope.as_dict().items() if v is not None]
    return ", ".join(parts) or "(none)"


def _date(value: float | None) -> str:
    iso = _iso(value)
    return iso[:10] if iso else "?"
