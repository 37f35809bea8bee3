"""The evaluation harness: recall@k, the raw-turn baselines and a whole ``eval locomo`` run."""

from __future__ import annotations

import argparse
import importlib.util
import json
import math

import pytest

from lightmem_core.config import HybridWeights
from lightmem_core.errors import InputError
from lightmem_core.eval.baselines import fuse, turn_text
from lightmem_core.eval.cli import add_eval_parser
from lightmem_core.eval.locomo import (
    LocomoOptions,
    _recalls_at,
    evaluate_locomo,
    format_report,
    options_from_args,
)
from lightmem_core.eval.metrics import evidence_recall, percentile, word_count


def test_evidence_recall_is_the_share_of_evidence_found():
    assert evidence_recall(["a", "b"], ["x", "a", "y"]) == 0.5
    assert evidence_recall(["a", "b"], ["b", "a"]) == 1.0
    assert evidence_recall(["a"], []) == 0.0
    assert evidence_recall(["a", "a"], ["a"]) == 1.0  # duplicates count once
    assert evidence_recall([], ["a"]) is None


def test_recall_at_k_counts_every_source_of_a_hit_and_only_the_top_k():
    ranked = [("m1",), ("m7", "m8"), ("m2",), ("m3",)]  # the second hit covers two turns
    recalls = _recalls_at([1, 2, 4], ["m8", "m3", "m9"], ranked)
    assert recalls == {1: 0.0, 2: pytest.approx(1 / 3), 4: pytest.approx(2 / 3)}


def test_percentile_matches_linear_interpolation():
    values = [5.0, 1.0, 3.0, 2.0, 4.0]
    assert percentile(values, 50) == 3.0
    assert percentile(values, 95) == pytest.approx(4.8)
    assert percentile(values, 0) == 1.0 and percentile(values, 100) == 5.0
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError):
        percentile(values, 101)


def test_word_count_and_turn_text():
    assert word_count("  Rex is  great!\n") == 3
    assert turn_text({"content": " hi ", "speaker_name": "Ana"}) == "Ana: hi"
    assert turn_text({"content": "hi"}) == "hi"


def test_fuse_is_weighted_reciprocal_rank_fusion():
    weights = HybridWeights(embedding=1.0, context=1.0, rrf_k=60)
    # "b" is second in both lists and beats "a" and "c", each first in one list only
    assert fuse({"embedding": ["a", "b"], "context": ["c", "b"]}, weights, 1) == ["b"]
    dense_only = HybridWeights(embedding=1.0, context=0.0, rrf_k=60)
    assert fuse({"embedding": ["a", "b"], "context": ["c", "b"]}, dense_only, 2) == ["a", "b"]


# ---------------------------------------------------------------------------------------------
# Whole runs on a synthetic two-session conversation
# ---------------------------------------------------------------------------------------------


def synthetic_locomo() -> list[dict]:
    session_1 = [
        ("Ana", "Hi Ben! Guess what, I adopted a puppy last weekend."),
        ("Ben", "No way! What is the puppy called?"),
        ("Ana", "His name is Biscuit, he is a border collie."),
        ("Ben", "I spent the weekend repairing my old sailboat at the harbour."),
        ("Ana", "Sounds fun. Do you sail often?"),
        ("Ben", "Every summer, mostly around the islands near Split."),
    ]
    session_2 = [
        ("Ben", "How is Biscuit doing?"),
        ("Ana", "Great, he learned to catch a frisbee in the park."),
        ("Ben", "I started a pottery class on Tuesdays."),
        ("Ana", "Pottery! Make me a bowl for the dog food."),
    ]

    def turns(session: int, rows: list[tuple[str, str]]) -> list[dict]:
        return [
            {"speaker": who, "dia_id": f"D{session}:{i}", "text": text}
            for i, (who, text) in enumerate(rows, start=1)
        ]

    return [
        {
            "sample_id": "syn-1",
            "conversation": {
                "speaker_a": "Ana",
                "speaker_b": "Ben",
                "session_1_date_time": "1:56 pm on 8 May, 2023",
                "session_1": turns(1, session_1),
                "session_2_date_time": "10:04 am on 2 June, 2023",
                "session_2": turns(2, session_2),
            },
            "qa": [
                {
                    "question": "What is the name of Ana's dog?",
                    "answer": "Biscuit",
                    "evidence": ["D1:3"],
                    "category": 4,
                },
                {
                    "question": "What boat is Ben repairing?",
                    "answer": "a sailboat",
                    "evidence": ["D1:4"],
                    "category": 4,
                },
                {
                    "question": "What class did Ben start and what did Ana's dog learn?",
                    "answer": "pottery; frisbee",
                    "evidence": ["D2:3", "D2:2"],
                    "category": 1,
                },
                {
                    "question": "When did Ana adopt a puppy?",
                    "answer": "early May 2023",
                    "evidence": ["D1:1"],
                    "category": 2,
                },
                {
                    "question": "What did Ana paint?",
                    "adversarial_answer": "a lake",
                    "evidence": ["D1:1"],
                    "category": 5,
                },
            ],
        }
    ]


@pytest.fixture
def locomo_file(tmp_path):
    path = tmp_path / "locomo-syn.json"
    path.write_text(json.dumps(synthetic_locomo()), encoding="utf-8")
    return path


def check_report(report: dict, k: int) -> None:
    assert set(report["systems"]) == {"lightmem", "bm25-turns", "dense-turns", "fusion-turns"}
    for name, system in report["systems"].items():
        assert system["questions"] == 4, name  # category 5 is left out
        assert 0.0 <= system[f"recall@{k}"] <= 1.0
        assert set(system["by_category"]) == {"1", "2", "4"}
        assert system["by_category"]["4"]["questions"] == 2
        assert system["turns"] == 10
        assert system["context_words"] > 0
        assert system["search_ms_p95"] >= system["search_ms_p50"] >= 0
    # with k as large as the conversation every system finds every evidence turn
    (sample,) = report["samples"]
    assert sample["sample_id"] == "syn-1" and sample["questions"] == 4
    assert len(report["questions"]) == 4
    assert report["metadata"]["config_hash"]
    assert report["metadata"]["data_sha256"]


def test_eval_on_reference_backends(locomo_file, tmp_path, ref_host):
    from lightmem_core.testing.reference import reference_config

    config = reference_config(tmp_path / "ignored")
    out = tmp_path / "report.json"
    options = LocomoOptions(data=str(locomo_file), k=10, config=config, out=str(out))
    report = evaluate_locomo(options, host=ref_host)
    check_report(report, 10)
    for name, system in report["systems"].items():
        assert system["recall@10"] == 1.0, name  # 10 turns, k = 10: everything is retrieved
    small = evaluate_locomo(attrs_evolve(options, k=2, out=None), host=ref_host)
    pipeline = small["systems"]["lightmem"]
    assert pipeline["recall@2"] < 1.0
    assert set(pipeline["recall_at"]) == {"1", "2"}
    words = [sum(len(s) for s in q["lightmem"]["sources"]) for q in small["questions"]]
    assert max(words) <= 2  # at most k memories, one source turn each
    saved = json.loads(out.read_text(encoding="utf-8"))
    assert saved["systems"]["lightmem"]["recall@10"] == 1.0
    assert saved["questions"][0]["evidence"] == ["syn-1:D1:3"]
    table = format_report(report)
    assert "lightmem" in table and "fusion-turns" in table and "R@10" in table


def attrs_evolve(options: LocomoOptions, **changes) -> LocomoOptions:
    import attrs

    return attrs.evolve(options, **changes)


def test_eval_refuses_a_non_empty_memory_dir_and_other_formats(locomo_file, tmp_path, ref_host):
    from lightmem_core.testing.reference import reference_config

    busy = tmp_path / "stores"
    (busy / "syn-1").mkdir(parents=True)
    (busy / "syn-1" / "history.db").write_text("x")
    options = LocomoOptions(
        data=str(locomo_file), config=reference_config(tmp_path), memory_dir=str(busy)
    )
    with pytest.raises(InputError, match="not empty"):
        evaluate_locomo(options, host=ref_host)
    messages = tmp_path / "messages.json"
    messages.write_text(json.dumps([{"role": "user", "content": "hi"}]), encoding="utf-8")
    with pytest.raises(InputError, match="expected a LoCoMo file"):
        evaluate_locomo(LocomoOptions(data=str(messages)), host=ref_host)


def test_eval_reuses_the_stores_of_an_earlier_run(locomo_file, tmp_path, ref_host):
    from lightmem_core.memory import LightMemory
    from lightmem_core.testing.reference import reference_config

    stores = tmp_path / "stores"
    config = reference_config(tmp_path / "ignored")
    options = LocomoOptions(
        data=str(locomo_file), k=2, config=config, memory_dir=str(stores), baselines=False
    )
    first = evaluate_locomo(options, host=ref_host)
    assert first["systems"]["lightmem"]["ingest_turns_per_s"] is not None
    # a search-only change (the fusion constant) is measured on the same stores, not ingested
    retuned = {**config, "hybrid_weights": {"rrf_k": 3}}
    again = evaluate_locomo(attrs_evolve(options, config=retuned, reuse=True), host=ref_host)
    assert again["systems"]["lightmem"]["ingest_turns_per_s"] is None
    assert again["systems"]["lightmem"]["questions"] == first["systems"]["lightmem"]["questions"]
    same = evaluate_locomo(attrs_evolve(options, reuse=True), host=ref_host)
    assert [q["lightmem"] for q in same["questions"]] == [q["lightmem"] for q in first["questions"]]
    memory = LightMemory({**config, "memory_dir": str(stores / "syn-1")}, host=ref_host)
    try:
        assert len(memory.get_all()) == 10  # each turn once: nothing was added again
    finally:
        memory.close()
    # what is in the store would differ: refused, saying what to do
    other = {**config, "speaker_vector_weight": 0.5}
    with pytest.raises(InputError, match="another configuration"):
        evaluate_locomo(attrs_evolve(options, config=other, reuse=True), host=ref_host)
    with pytest.raises(InputError, match=r"not empty.*--reuse"):
        evaluate_locomo(options, host=ref_host)
    (stores / "syn-1" / "lightmem-eval-ingest.json").unlink()  # as a store cut short leaves it
    with pytest.raises(InputError, match="no readable"):
        evaluate_locomo(attrs_evolve(options, reuse=True), host=ref_host)


def test_eval_parser_arguments():
    parser = argparse.ArgumentParser(prog="lightmem")
    add_eval_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["eval", "locomo", "--data", "x.json", "--samples", "conv-26,conv-30", "--k", "5"]
    )
    assert (args.data, args.samples, args.k, args.out) == (
        "x.json",
        "conv-26,conv-30",
        5,
        "locomo-eval.json",
    )
    assert callable(args.func)
    assert args.reuse is False
    reused = parser.parse_args(
        ["eval", "locomo", "--data", "x.json", "--memory-dir", "d", "--reuse"]
    )
    assert options_from_args(reused).reuse is True
    with pytest.raises(SystemExit):
        parser.parse_args(["eval", "locomo", "--data", "x.json", "--k", "0"])


DEFAULT_PLUGINS = ("lightmem_huggingface", "lightmem_qdrant", "lightmem_sqlite_index")
missing = [name for name in DEFAULT_PLUGINS if importlib.util.find_spec(name) is None]


@pytest.mark.slow
@pytest.mark.skipif(
    bool(missing),
    reason=f"the embedded default needs the plugins {', '.join(missing)} "
    "(pip install -e plugins/lightmem-huggingface plugins/lightmem-qdrant plugins/lightmem-bm25 "
    "plugins/lightmem-sqlite-index)",
)
def test_eval_locomo_command_with_the_embedded_default(locomo_file, tmp_path, capsys, monkeypatch):
    from lightmem_core.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "report.json"
    code = main(
        ["eval", "locomo", "--data", str(locomo_file), "--k", "3", "--out", str(out), "--quiet"]
    )
    assert code == 0
    table = capsys.readouterr().out
    assert "lightmem" in table and "dense-turns" in table
    report = json.loads(out.read_text(encoding="utf-8"))
    check_report(report, 3)
    meta = report["metadata"]
    assert meta["text_embedder_model"].endswith("all-MiniLM-L6-v2")
    assert meta["backends"]["embedding_retriever"] == ["qdrant"]
    by_question = {q["id"]: q for q in report["questions"]}
    # the dog's name is found by the real pipeline in its top 3
    assert by_question["syn-1:q0"]["lightmem"]["recall"] == 1.0
    assert report["usage"]["total"]["llm_calls"] == 0


def test_eval_reports_the_pipeline_without_its_graph(locomo_file, tmp_path, ref_host):
    from lightmem_core.testing.reference import reference_config

    config = reference_config(
        tmp_path / "ignored", graph_mem=True, graph_memory={"model_name": "memory"}
    )
    options = LocomoOptions(data=str(locomo_file), k=2, config=config, baselines=False)
    report = evaluate_locomo(options, host=ref_host)
    assert set(report["systems"]) == {"lightmem", "lightmem-without-graph"}
    for record in report["questions"]:
        assert "lightmem-without-graph" in record
    # the query is embedded once, before both searches, and its time is in both latencies
    # (else the search that runs second would find the vector remembered and look faster)
    embeds = [record["query_embed_ms"] for record in report["questions"]]
    assert all(ms > 0 for ms in embeds)
    for name in ("lightmem", "lightmem-without-graph"):
        searches = report["systems"][name]["search_ms"]
        assert len(searches) == len(embeds)
        assert all(s >= round(e, 3) - 0.001 for s, e in zip(searches, embeds, strict=True))
    plain = evaluate_locomo(
        attrs_evolve(options, config=reference_config(tmp_path / "x")), host=ref_host
    )
    assert set(plain["systems"]) == {"lightmem"}
    assert (
        plain["systems"]["lightmem"]["recall@2"]
        == report["systems"]["lightmem-without-graph"]["recall@2"]
    )


def test_the_ingest_stamp_is_written_where_a_server_memory_left_no_folder(tmp_path):
    from lightmem_core.eval.stores import STAMP, reusable, write_stamp

    store_dir = tmp_path / "stores" / "conv-1"  # a Postgres memory writes nothing here
    stamp = {"sample": "conv-1", "messages": "m", "ingest_config": "c"}
    write_stamp(store_dir, stamp)
    assert json.loads((store_dir / STAMP).read_text(encoding="utf-8")) == stamp
    assert reusable(store_dir, stamp, reuse=True)


def test_a_run_stopped_midway_keeps_the_report_of_the_samples_done(tmp_path, ref_host):
    """The report is written after each sample, whole or not at all: a run that fails on its
    second conversation leaves the first one's results."""
    from lightmem_core.testing.reference import reference_config

    (first,) = synthetic_locomo()
    second = json.loads(json.dumps(first))
    second["sample_id"] = "syn-2"
    second["conversation"]["session_2"][1]["text"] = "frisbee " * 100  # over the limit below
    data = tmp_path / "two.json"
    data.write_text(json.dumps([first, second]), encoding="utf-8")
    config = {**reference_config(tmp_path / "ignored"), "max_message_chars": 300}
    out = tmp_path / "report.json"
    options = LocomoOptions(data=str(data), k=10, config=config, out=str(out))
    with pytest.raises(InputError, match="max_message_chars"):
        evaluate_locomo(options, host=ref_host)
    saved = json.loads(out.read_text(encoding="utf-8"))
    assert saved["planned"] == ["syn-1", "syn-2"] and saved["done"] == ["syn-1"]
    assert [s["sample_id"] for s in saved["samples"]] == ["syn-1"]
    assert saved["systems"]["lightmem"]["questions"] == 4
    assert {q["id"].split(":")[0] for q in saved["questions"]} == {"syn-1"}
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []
