"""The core's graph building (LLM relations, no-LLM fallback, entity dedup) and graph retriever."""

from __future__ import annotations

import datetime as dt

from lightmem_hookspecs import MemoryEntry, Scope, SearchFilter, normalize_name

from lightmem_core.graph import (
    RELATIONS_KEY,
    GraphBuilder,
    GraphSettings,
    date_mentions,
    fallback_relations,
    graph_search,
    name_mentions,
    number_mentions,
    query_names,
    topic_mentions,
)
from lightmem_core.testing.reference import HashEmbedder, MemoryGraph

ALICE = Scope(user_id="alice")
BOB = Scope(user_id="bob")


def entry(i, text, *, speaker="Caroline", scope=ALICE, when=None, relations=None):
    meta = {} if relations is None else {RELATIONS_KEY: relations}
    return MemoryEntry(
        id=f"e{i}",
        memory=text,
        source_message_ids=(f"m{i}",),
        speaker_name=speaker,
        scope=scope,
        time_stamp=when,
        metadata=meta,
    )


def rel(subject, relation, obj, single=False):
    return {"subject": subject, "relation": relation, "object": obj, "single": single}


def test_names_dates_and_numbers_of_a_text():
    text = (
        "Hey Mel! I went to the LGBTQ support group in New York City on 7 May 2023 with "
        "Melanie and my 3 kids. The Lord of the Rings is next. Since 2016 I paint."
    )
    assert name_mentions(text) == ["Mel", "LGBTQ", "New York City", "Melanie", "Lord of the Rings"]
    assert date_mentions(text) == ["7 May 2023", "2016"]
    assert date_mentions("on May 8th, 2023 and in June 2022") == ["8 May 2023", "June 2022"]
    assert number_mentions(text) == ["3 kids"]
    assert name_mentions("Thanks! Yes, that was great. Wow.") == []


def test_the_fallback_links_what_co_occurs():
    e = entry(1, "I took Luna to Lake Tahoe in July 2022 with my 2 dogs, Caroline.")
    triples = {(t.subject.name, t.relation, t.object.name) for t in fallback_relations(e)}
    items = {"Luna", "Lake Tahoe", "July 2022", "2 dogs"}
    pairs = {frozenset((s, o)) for s, r, o in triples if r == "co_occurs_with"}
    assert pairs == {frozenset((a, b)) for a in items for b in items if a != b}
    said = {o for s, r, o in triples if r == "mentions"}
    assert all(s == "Caroline" for s, r, _ in triples if r == "mentions")
    assert said == items | {"took (topic)"}, "the speaker mentions the items and topic words"
    assert "Caroline" not in {o for _, _, o in triples}, "the speaker is not a mention"
    assert all(not t.exclusive for t in fallback_relations(e))
    assert fallback_relations(entry(2, "haha yes, totally!", speaker=None)) == []
    alone = fallback_relations(entry(3, "Painting sunsets at the lake", speaker=None))
    assert {(t.subject.name, t.relation, t.object.name) for t in alone} == {
        ("paint (topic)", "co_occurs_with", "sunset (topic)"),
        ("paint (topic)", "co_occurs_with", "lake (topic)"),
    }, "without a speaker the topics hang on the first item"


def test_topics_are_content_words_outside_names_dates_and_counts():
    text = "Yesterday I went camping with my 3 kids near Lake Tahoe on 7 May 2023, Mel!"
    assert topic_mentions(text) == ["camp", "near"]
    assert topic_mentions("We camped; she camps.", exclude=["Mel"]) == ["camp"]
    assert topic_mentions("Melanie loves pottery", exclude=["Melanie"]) == ["love", "pottery"]
    assert topic_mentions("stories of boxes and classes") == ["story", "box", "class"]


def test_a_speaker_named_in_a_turn_is_spoken_to_not_mentioned():
    graph = MemoryGraph()
    builder = GraphBuilder(graph)
    builder.index(
        [
            entry(1, "Thanks, Melanie! I love the pottery.", speaker="Caroline"),
            entry(2, "Glad you like it, Caroline. Pottery calms me.", speaker="Melanie"),
        ]
    )
    rels = graph.relations()
    assert {(r.entry_id, r.subject_name) for r in rels} == {("e1", "Caroline"), ("e2", "Melanie")}
    assert not [r for r in rels if r.object_name in ("Melanie", "Caroline")]
    builder.index([entry(3, "Melanie, look at my new vase!", speaker="Caroline")])
    assert not [r for r in graph.relations() if r.object_name == "Melanie"], (
        "a speaker the graph knows is not a mention in a later batch either"
    )
    people = [e for e in graph.entities() if e.kind == "person"]
    assert sorted(e.name for e in people) == ["Caroline", "Melanie"]


def test_llm_relations_are_used_instead_of_the_fallback_and_close_old_ones(tmp_path):
    graph = MemoryGraph(tmp_path / "g.json")
    builder = GraphBuilder(graph)
    t0 = dt.datetime(2022, 1, 1)
    builder.index(
        [
            entry(
                1,
                "Alice lives in Paris.",
                when=t0,
                relations=[rel("Alice", "lives in", "Paris", True)],
            ),
            entry(
                2, "Alice's friend is Bob.", when=t0, relations=[rel("Alice", "friend_of", "Bob")]
            ),
        ]
    )
    builder.index(
        [
            entry(
                3,
                "Alice moved to Berlin.",
                when=dt.datetime(2023, 6, 1),
                relations=[rel("alice", "Lives_In", "Berlin", True)],
            )
        ]
    )
    rels = {r.entry_id: r for r in graph.relations()}
    assert {r.relation for r in rels.values()} == {"lives_in", "friend_of"}
    assert rels["e1"].valid_until == rels["e3"].valid_from
    assert rels["e1"].superseded_by == rels["e3"].id
    assert rels["e3"].valid_until is None
    assert rels["e3"].subject == rels["e1"].subject, "alice and Alice are one entity"
    assert rels["e1"].message_ids == ("m1",) and rels["e1"].fact == "Alice lives in Paris."
    assert len([e for e in graph.entities() if normalize_name(e.name) == "alice"]) == 1


def test_similar_names_become_aliases_with_an_embedder(tmp_path):
    graph = MemoryGraph()
    builder = GraphBuilder(
        graph, embedder=HashEmbedder(256), settings=GraphSettings(similarity=0.8)
    )
    builder.index([entry(1, "x", relations=[rel("Caroline", "visited", "Golden Gate Bridge")])])
    builder.index([entry(2, "y", relations=[rel("Caroline", "painted", "Golden Gate Bridge SF")])])
    bridge = [e for e in graph.entities() if "golden" in normalize_name(e.name)]
    assert len(bridge) == 1
    assert bridge[0].name == "Golden Gate Bridge"
    assert "Golden Gate Bridge SF" in bridge[0].aliases
    strict = GraphBuilder(MemoryGraph(), embedder=HashEmbedder(256), settings=GraphSettings(0.99))
    strict.index([entry(1, "x", relations=[rel("Caroline", "visited", "Golden Gate Bridge")])])
    strict.index([entry(2, "y", relations=[rel("Caroline", "painted", "Golden Gate Bridge SF")])])
    assert len([e for e in strict.graph.entities() if "golden" in normalize_name(e.name)]) == 2


def test_entities_never_cross_scopes():
    graph = MemoryGraph()
    builder = GraphBuilder(graph, embedder=HashEmbedder(64))
    builder.index([entry(1, "I saw Alice meet Bob in Paris.", scope=ALICE)])
    builder.index([entry(2, "I saw Alice meet Bob in Paris.", scope=BOB)])
    assert {e.scope for e in graph.entities()} == {ALICE, BOB}
    # Caroline, Alice, Bob, Paris and the topic "meet", once per scope
    assert len(graph.entities()) == 10
    for r in graph.relations():
        ends = {e.id: e.scope for e in graph.entities()}
        assert ends[r.subject] == ends[r.object] == r.scope


def test_graph_search_answers_a_two_hop_question():
    graph = MemoryGraph()
    builder = GraphBuilder(graph)
    builder.index(
        [
            entry(1, "Alice's best friend is Bob.", relations=[rel("Alice", "friend_of", "Bob")]),
            entry(
                2, "Bob's home is in Berlin.", relations=[rel("Bob", "lives_in", "Berlin", True)]
            ),
            entry(3, "Carol lives in Rome.", relations=[rel("Carol", "lives_in", "Rome", True)]),
        ]
    )
    hits = graph_search(graph, "where does alice's friend live?", limit=5, filter=SearchFilter())
    assert [h.entry_id for h in hits] == ["e1", "e2"]
    assert [r.describe() for r in hits[1].path] == [
        "Alice -friend_of-> Bob",
        "Bob -lives_in-> Berlin",
    ]
    other = graph_search(
        graph, "where does alice's friend live?", limit=5, filter=SearchFilter(user_id="bob")
    )
    assert other == []


def _camping_graph():
    graph = MemoryGraph()
    filler = [
        entry(10 + i, text, speaker=who)
        for i, (who, text) in enumerate(
            [("Caroline", f"My painting number {i} is finished.") for i in range(8)]
            + [("Melanie", f"The pottery class number {i} was fun.") for i in range(8)]
        )
    ]
    camping = [
        entry(1, "We went camping at the beach last summer."),
        entry(2, "The camping trip in the mountains was freezing."),
        entry(3, "My kids loved the beach."),
    ]
    GraphBuilder(graph).index([*camping, *filler])
    return graph


def test_the_best_hits_lend_their_rare_entities_to_the_graph_search():
    graph = _camping_graph()
    query = "Where has Caroline been?"
    hits = graph_search(graph, query, limit=10, candidates=["e1", "e10", "e11"], total=19)
    scores = {h.entry_id: h.score for h in hits}
    assert {"e2", "e3"} <= set(scores), "they share camp and beach with the best hit"
    assert not {"e18", "e19"} & set(scores), "Melanie's pottery shares nothing with them"
    assert not {"e12", "e13"} & set(scores), "nor do Caroline's other paintings"
    assert scores["e10"] > scores["e1"], "a best hit's own entities count for the others only"
    e2 = graph.relations(entry_ids=["e2"])
    assert all(h.path and h.path[0] in e2 for h in hits if h.entry_id == "e2")
    alone = graph_search(
        graph, query, limit=10, candidates=["e1"], settings=GraphSettings(expand=0), total=19
    )
    assert [h.entry_id for h in alone] == ["e1"], "without expansion: only what the query names"


def test_a_hub_weighs_entries_but_is_not_walked_from():
    graph = _camping_graph()
    none = GraphSettings(expand=0)
    assert graph_search(graph, "What did Caroline paint?", limit=10, settings=none) == [], (
        "Caroline is linked to 11 of 19 entries: walking from her would rank by recency"
    )
    hits = graph_search(
        graph, "What did Caroline paint?", limit=10, settings=none, candidates=["e18", "e10"]
    )
    assert [h.entry_id for h in hits] == ["e10"], "her entries among the candidates count"
    counts = graph.entry_counts([h.path[0].subject for h in hits])
    assert list(counts.values()) == [11]


def test_time_bounds_select_what_was_valid_then():
    graph = MemoryGraph()
    builder = GraphBuilder(graph)
    builder.index(
        [
            entry(
                1,
                "x",
                when=dt.datetime(2019, 5, 1),
                relations=[rel("Maya", "lives_in", "Oslo", True)],
            ),
            entry(
                2,
                "y",
                when=dt.datetime(2023, 2, 1),
                relations=[rel("Maya", "lives_in", "Lima", True)],
            ),
        ]
    )
    in_2022 = SearchFilter(time_gte=dt.datetime(2022, 1, 1), time_lt=dt.datetime(2023, 1, 1))
    hits = graph_search(graph, "Where did Maya live?", limit=5, filter=in_2022)
    assert [h.entry_id for h in hits] == ["e1"], "Oslo was still her home in 2022"
    now = graph_search(graph, "Where does Maya live?", limit=5, filter=SearchFilter())
    assert [h.entry_id for h in now] == ["e2"], "without a time, only what is still valid"


def test_query_names_cover_capitalised_spans_and_ngrams():
    names = query_names("When did Caroline go to the LGBTQ support group?")
    assert "Caroline" in names and "LGBTQ support group" in names
    assert "When" not in names and "did" not in names


def test_relations_come_from_the_same_extraction_call():
    import json

    from lightmem_hookspecs import Message, Segment

    from lightmem_core.llm.extraction import ExtractedRelation, extract_facts
    from lightmem_core.testing.scripted import ScriptedMemoryManager

    llm = ScriptedMemoryManager(max_tokens=2000)
    t0 = dt.datetime(2023, 5, 20, 9, 0)
    messages = tuple(
        Message(f"id{i}", "user", text, text, t0, "alice", "Alice")
        for i, text in enumerate(["I moved to Berlin.", "My friend Bob lives in Rome."])
    )
    reply = {
        "facts": [
            {
                "text": "Alice lives in Berlin.",
                "sources": ["m1"],
                "importance": 0.9,
                "relations": [
                    {
                        "subject": "Alice",
                        "relation": "lives_in",
                        "object": "Berlin",
                        "single": True,
                    },
                    {"subject": "Alice", "relation": "", "object": "x", "single": False},
                ],
            },
            {
                "text": "Bob, Alice's friend, lives in Rome.",
                "sources": ["m2"],
                "importance": 0.8,
                "relations": [
                    {"subject": "Alice", "relation": "friend_of", "object": "Bob", "single": False},
                    {"subject": "Bob", "relation": "lives_in", "object": "Rome", "single": True},
                ],
            },
        ]
    }
    llm.queue(json.dumps(reply))
    result = extract_facts(
        llm,
        [Segment(1, messages)],
        messages_use="user_only",
        metadata_generate=False,
        text_summary=False,
        extract_threshold=0.1,
        relations=True,
    )
    llm.close()
    [request] = llm.requests
    schema = json.dumps(request.json.get("response_format", {}))
    assert '"relations"' in schema and '"single"' in schema
    assert '"relations"' in request.json["messages"][1]["content"]
    assert request.max_tokens == 2 * llm.options.max_tokens, (
        "room for the relations in the same answer"
    )
    by_text = {f.text: f for f in result.facts}
    assert by_text["Alice lives in Berlin."].relations == (
        ExtractedRelation("Alice", "lives_in", "Berlin", True),
    )
    assert [r.object for r in by_text["Bob, Alice's friend, lives in Rome."].relations] == [
        "Bob",
        "Rome",
    ]


def _moves_graph():
    graph = MemoryGraph()
    GraphBuilder(graph).index(
        [
            entry(
                1,
                "Maya lives in Oslo; her friend is Bob.",
                when=dt.datetime(2019, 5, 1),
                relations=[rel("Maya", "lives_in", "Oslo", True), rel("Maya", "friend_of", "Bob")],
            ),
            entry(
                2,
                "Maya moved to Lima; Bob works at ACME.",
                when=dt.datetime(2023, 2, 1),
                relations=[rel("Maya", "lives_in", "Lima", True), rel("Bob", "works_at", "ACME")],
            ),
        ]
    )
    return graph


def test_show_lists_relations_by_depth_with_history():
    from lightmem_core.graph import show

    graph = _moves_graph()
    one = show(graph, "maya", depth=1)
    assert one[0].startswith("Maya [thing] scope user_id=alice")
    assert "  Maya -lives_in-> Oslo  [2019-05-01 .. 2023-02-01] (superseded)  entry e1" in one
    assert not any("ACME" in line for line in one)
    two = show(graph, "Maya", depth=2)
    assert "    Bob -works_at-> ACME  [2023-02-01 .. ]  entry e2" in two
    assert show(graph, "Maya", filter=SearchFilter(user_id="bob")) == []


def test_exports_carry_every_entity_and_relation():
    import json
    import xml.etree.ElementTree as ET

    from lightmem_core.graph import export_graphml, export_json

    graph = _moves_graph()
    data = json.loads(json.dumps(export_json(graph)))
    assert {e["name"] for e in data["entities"]} == {"Maya", "Oslo", "Bob", "Lima", "ACME"}
    oslo = next(r for r in data["relations"] if r["object_name"] == "Oslo")
    assert oslo["valid_until"] == "2023-02-01T00:00:00+00:00" and oslo["superseded_by"]
    root = ET.fromstring(export_graphml(graph))
    ns = {"g": "http://graphml.graphdrawing.org/xmlns"}
    assert len(root.findall(".//g:node", ns)) == 5
    edges = root.findall(".//g:edge", ns)
    assert len(edges) == 4
    labels = {
        d.text for e in edges for d in e.findall("g:data", ns) if d.get("key") == "e_relation"
    }
    assert labels == {"lives_in", "friend_of", "works_at"}


def test_a_sentence_opener_is_a_name_only_with_evidence():
    graph = MemoryGraph()
    builder = GraphBuilder(graph)

    def names():
        return {e.name for e in graph.entities() if e.kind not in ("topic", "person")}

    builder.index([entry(1, "Keep going! Gina opened a store in Paris.")])
    assert names() == {"Paris"}, "Gina opens a sentence: no name yet"
    builder.index([entry(2, "I met Gina in Rome."), entry(3, "Gina loves Paris. Sounds fun!")])
    assert names() == {"Gina", "Rome", "Paris"}
    builder.index([entry(4, "Gina went to Lisbon.")])
    assert {"Gina", "Lisbon"} <= names(), "Gina is known by now"
    rels = graph.relations(entry_ids=["e4"])
    assert "Gina -co_occurs_with-> Lisbon" in {r.describe() for r in rels}
