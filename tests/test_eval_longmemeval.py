"""``lightmem eval longmemeval`` on a small synthetic LongMemEval-format history, and the charts
of both harnesses (``--plot``)."""

from __future__ import annotations

import argparse
import json
import re

import attrs
import pytest

from lightmem_core.errors import InputError
from lightmem_core.eval.cli import add_eval_parser
from lightmem_core.eval.longmemeval import (
    LongMemEvalOptions,
    cut_to_words,
    evaluate_longmemeval,
    format_report,
    judge_prompt_for,
    load_longmemeval,
    question_scores,
    read_ids,
)

FILLER = [
    ("Can you suggest a recipe for lentil soup?", "Sure: lentils, onion, carrot and cumin."),
    ("What is a good stretch for the lower back?", "Try the child's pose for thirty seconds."),
    ("How do I repot a cactus?", "Wear gloves and use a gritty, fast-draining soil mix."),
    ("Recommend a sci-fi novel please.", "The Left Hand of Darkness by Ursula K. Le Guin."),
]


def _session(pairs, answer_turns=()):
    turns = []
    for i, (user, assistant) in enumerate(pairs):
        turns.append({"role": "user", "content": user, "has_answer": 2 * i in answer_turns})
        turns.append(
            {"role": "assistant", "content": assistant, "has_answer": 2 * i + 1 in answer_turns}
        )
    return turns


def synthetic_samples() -> list[dict]:
    """Three questions over five sessions each: a user fact, an assistant fact, an update."""
    dates = [f"2023/05/{d:02d} (Mon) 1{d % 10}:00" for d in (1, 3, 8, 15, 22)]
    base_ids = ["s_a", "s_b", "s_c", "s_d", "s_e"]

    def sample(qid, qtype, question, answer, sessions, answer_ids):
        return {
            "question_id": qid,
            "question_type": qtype,
            "question": question,
            "question_date": "2023/06/01 (Thu) 09:00",
            "answer": answer,
            "answer_session_ids": answer_ids,
            "haystack_dates": dates,
            "haystack_session_ids": [f"{qid}_{s}" for s in base_ids],
            "haystack_sessions": sessions,
        }

    filler = [_session(FILLER[i : i + 2]) for i in range(0, 4, 2)]
    user_fact = _session(
        [("My sister Maya just adopted a greyhound called Pepper.", "Congratulations to her!")],
        answer_turns=(0,),
    )
    assistant_fact = _session(
        [("Name a quiet hiking trail near Boulder.", "Try the Mesa Trail from Chautauqua Park.")],
        answer_turns=(1,),
    )
    moved_1 = _session(
        [("My job: I work as a nurse at the city hospital.", "That is demanding work.")], (0,)
    )
    moved_2 = _session([("My job changed: now I teach biology.", "Exciting change!")], (0,))
    return [
        sample(
            "q_user",
            "single-session-user",
            "What is the name of my sister's greyhound?",
            "Pepper",
            [filler[0], user_fact, filler[1], filler[0], filler[1]],
            ["q_user_s_b"],
        ),
        sample(
            "q_asst",
            "single-session-assistant",
            "Which hiking trail near Boulder did you recommend?",
            "the Mesa Trail",
            [filler[0], filler[1], assistant_fact, filler[0], filler[1]],
            ["q_asst_s_c"],
        ),
        sample(
            "q_ku",
            "knowledge-update",
            "What is my job now?",
            "biology teacher",
            [moved_1, filler[0], filler[1], moved_2, filler[0]],
            ["q_ku_s_a", "q_ku_s_d"],
        ),
        sample(
            "q_tr_abs",
            "temporal-reasoning",
            "How many days before my trip to Japan did I buy a kimono?",
            "The information provided is not enough.",
            [filler[0], filler[1], filler[0], filler[1], filler[0]],
            [],
        ),
    ]


@pytest.fixture
def lme_dir(tmp_path):
    folder = tmp_path / "lme"
    folder.mkdir()
    for s in synthetic_samples():
        (folder / f"{s['question_id']}.json").write_text(json.dumps(s), encoding="utf-8")
    return folder


def _config(tmp_path, **overrides):
    from lightmem_core.testing.reference import reference_config

    return reference_config(tmp_path / "ignored", **overrides)


def test_question_scores_turns_and_sessions():
    [conv] = load_longmemeval_list([synthetic_samples()[2]])
    q = conv.questions[0]
    assert q.evidence == ("q_ku:q_ku_s_a:0", "q_ku:q_ku_s_d:0")
    ranked = [("q_ku:q_ku_s_d:0",), ("q_ku:q_ku_s_b:1",), ("q_ku:q_ku_s_a:0", "q_ku:q_ku_s_a:1")]
    scores = question_scores(q, ranked, [1, 3])
    assert scores["turn@1"] == 0.5 and scores["turn@3"] == 1.0
    assert scores["session_any@1"] == 1.0 and scores["session_all@1"] == 0.0
    assert scores["session_all@3"] == 1.0


def load_longmemeval_list(samples):
    from lightmem_core.datasets import longmemeval_conversation

    return [longmemeval_conversation(s) for s in samples]


def test_cut_to_words_keeps_the_prefix_that_fits():
    words = {"a": 5, "b": 10, "c": 1}
    assert cut_to_words(["a", "b", "c"], words, 15) == ["a", "b"]
    assert cut_to_words(["a", "b", "c"], words, 14) == ["a"]  # "c" after a cut is not taken
    assert cut_to_words(["b"], words, 3) == []


def test_load_folder_file_and_ids(lme_dir, tmp_path):
    ids = tmp_path / "ids.txt"
    ids.write_text("# dev\nq_ku\n\nq_user\n", encoding="utf-8")
    assert read_ids(ids) == ("q_ku", "q_user")
    convs = load_longmemeval(lme_dir, read_ids(ids))
    assert [c.sample_id for c in convs] == ["q_ku", "q_user"]  # in the order of the ids
    combined = tmp_path / "all.json"
    combined.write_text(json.dumps(synthetic_samples()), encoding="utf-8")
    assert len(load_longmemeval(combined)) == 4
    with pytest.raises(InputError, match="not in"):
        load_longmemeval(combined, ["q_user", "nope"])
    (tmp_path / "empty.txt").write_text("\n", encoding="utf-8")
    with pytest.raises(InputError, match="lists no question id"):
        read_ids(tmp_path / "empty.txt")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.json").write_text(json.dumps([{"conversation": {}}]), encoding="utf-8")
    with pytest.raises(InputError, match=r"x.json\[0\]: expected a LongMemEval sample"):
        load_longmemeval(bad)


def test_eval_on_reference_backends(lme_dir, tmp_path, ref_host):
    out = tmp_path / "report.json"
    options = LongMemEvalOptions(data=str(lme_dir), k=3, config=_config(tmp_path), out=str(out))
    report = evaluate_longmemeval(options, host=ref_host)
    systems = report["systems"]
    assert set(systems) == {
        "lightmem",
        *(f"{b}-turns{s}" for b in ("bm25", "dense", "fusion") for s in ("", "@words")),
    }
    assert report["questions"] == report["planned"] == 4 and report["abstentions"] == 1
    pipe = systems["lightmem"]
    assert pipe["questions"] == 3
    # user_only: the pipeline holds the user turns only (5 sessions, 1-2 exchanges each)
    assert pipe["turns"] == sum(
        len([t for s in x["haystack_sessions"] for t in s if t["role"] == "user"])
        for x in synthetic_samples()
    )
    by_type = pipe["by_type"]
    assert by_type["single-session-user"]["turn@3"] == 1.0
    assert by_type["knowledge-update"]["turn@3"] == 1.0
    assert by_type["knowledge-update"]["session_all@3"] == 1.0
    # the assistant's recommendation is never stored with user_only
    assert by_type["single-session-assistant"]["turn@3"] == 0.0
    assert pipe["turn@3_user_types"] == 1.0
    records = {r["id"]: r for r in report["per_question"]}
    assert records["q_tr_abs"]["abstention"] is True and "lightmem" not in records["q_tr_abs"]
    for qid in ("q_user", "q_asst", "q_ku"):
        record = records[qid]
        budget = record["lightmem"]["words"]
        for b in ("bm25", "dense", "fusion"):
            assert record[f"{b}-turns@words"]["words"] <= budget
            assert len(record[f"{b}-turns"]["ids"]) <= 3
        # the baselines index what messages_use keeps
        assert all(
            ":" in i and int(i.rsplit(":", 1)[1]) % 2 == 0 for i in record["dense-turns"]["ids"]
        )
    saved = json.loads(out.read_text(encoding="utf-8"))
    assert saved["systems"]["lightmem"]["turn@3"] == pipe["turn@3"]
    table = format_report(report)
    assert re.search(r"^lightmem\s+1\.000\s+0\.000\s+1\.000", table, re.M)
    assert "fusion-turns@words" in table and "sesAll@3" in table

    hybrid = evaluate_longmemeval(
        attrs.evolve(options, config=_config(tmp_path, messages_use="hybrid"), out=None, k=4),
        host=ref_host,
    )
    # the recommendation is stored and found (4th, after the question that asked for it)
    assert hybrid["systems"]["lightmem"]["by_type"]["single-session-assistant"]["turn@4"] == 1.0
    assert hybrid["systems"]["lightmem"]["turns"] == 2 * pipe["turns"]


def test_eval_refuses_a_non_empty_memory_dir(lme_dir, tmp_path, ref_host):
    busy = tmp_path / "stores" / "q_asst"
    busy.mkdir(parents=True)
    (busy / "history.db").write_text("x")
    options = LongMemEvalOptions(
        data=str(lme_dir), config=_config(tmp_path), memory_dir=str(tmp_path / "stores")
    )
    with pytest.raises(InputError, match="not empty"):
        evaluate_longmemeval(options, host=ref_host)


def test_eval_reuses_the_stores_of_an_earlier_run(lme_dir, tmp_path, ref_host):
    options = LongMemEvalOptions(
        data=str(lme_dir),
        k=3,
        config=_config(tmp_path),
        memory_dir=str(tmp_path / "stores"),
        baselines=False,
    )
    first = evaluate_longmemeval(options, host=ref_host)
    again = evaluate_longmemeval(attrs.evolve(options, reuse=True), host=ref_host)
    assert again["systems"]["lightmem"]["turns"] == 0  # nothing ingested
    assert [r.get("lightmem") for r in again["per_question"]] == [
        r.get("lightmem") for r in first["per_question"]
    ]
    with pytest.raises(InputError, match="another configuration"):
        evaluate_longmemeval(
            attrs.evolve(options, config=_config(tmp_path, messages_use="hybrid"), reuse=True),
            host=ref_host,
        )


def test_judge_prompt_follows_the_question_type():
    convs = {c.sample_id: c.questions[0] for c in load_longmemeval_list(synthetic_samples())}
    temporal = judge_prompt_for(convs["q_tr_abs"], "I don't know")
    assert "cannot be answered" in temporal  # abstention first
    update = judge_prompt_for(convs["q_ku"], "a teacher")
    assert "updated answer" in update and "Correct Answer: biology teacher" in update
    assert "Model Response: a teacher" in update
    plain = judge_prompt_for(convs["q_user"], "")
    assert "(no answer)" in plain and '"verdict"' in plain


def test_parser_arguments():
    parser = argparse.ArgumentParser(prog="lightmem")
    add_eval_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["eval", "longmemeval", "--data", "d", "--ids", "i.txt", "--k", "5", "--plot", "p"]
    )
    assert (args.data, args.ids, args.k, args.plot, args.out) == (
        "d",
        "i.txt",
        5,
        "p",
        "longmemeval-eval.json",
    )
    assert parser.parse_args(["eval", "locomo", "--data", "x", "--plot", "q"]).plot == "q"


PNG = b"\x89PNG\r\n\x1a\n"


def test_plots_of_both_harnesses_are_pngs(lme_dir, tmp_path, ref_host):
    pytest.importorskip("matplotlib", reason="--plot needs matplotlib (pip install lightmem[plot])")
    from lightmem_core.eval.locomo import LocomoOptions, evaluate_locomo
    from lightmem_core.eval.plots import FILES, plot_report, recall_curves

    from .test_eval import synthetic_locomo

    report = evaluate_longmemeval(
        LongMemEvalOptions(data=str(lme_dir), k=3, config=_config(tmp_path)), host=ref_host
    )
    curves = recall_curves(report)
    assert set(curves) == {
        "single-session-user",
        "single-session-assistant",
        "knowledge-update",
        "all",
    }
    user = curves["single-session-user"]["lightmem"]
    assert len(user) == 3 and user == sorted(user) and user[-1] == 1.0
    assert "fusion-turns@words" not in curves["all"]
    written = plot_report(report, tmp_path / "lme-plots")
    assert [p.name for p in written] == list(FILES)

    locomo = tmp_path / "locomo.json"
    locomo.write_text(json.dumps(synthetic_locomo()), encoding="utf-8")
    loco = evaluate_locomo(
        LocomoOptions(data=str(locomo), k=4, config=_config(tmp_path)), host=ref_host
    )
    assert len(loco["systems"]["lightmem"]["search_ms"]) == 4
    written += plot_report(loco, tmp_path / "locomo-plots")
    for path in written:
        data = path.read_bytes()
        assert data.startswith(PNG) and len(data) > 5000, path


DEFAULT_PLUGINS = ("lightmem_huggingface", "lightmem_qdrant", "lightmem_sqlite_index")


@pytest.mark.slow
def test_eval_command_with_the_embedded_default_writes_plots(
    lme_dir, tmp_path, capsys, monkeypatch
):
    pytest.importorskip("matplotlib", reason="--plot needs matplotlib (pip install lightmem[plot])")
    for module in DEFAULT_PLUGINS:
        pytest.importorskip(module, reason="the embedded default plugins are not installed")
    from lightmem_core.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ids = tmp_path / "ids.txt"
    ids.write_text("q_user\nq_ku\n", encoding="utf-8")
    out = tmp_path / "r.json"
    args = ["eval", "longmemeval", "--data", str(lme_dir), "--ids", str(ids), "--k", "2"]
    code = main([*args, "--out", str(out), "--plot", str(tmp_path / "plots")])
    assert code == 0
    captured = capsys.readouterr()
    assert re.search(r"^lightmem\s+1\.000\s+1\.000", captured.out, re.M)  # ssu, ku
    assert "[########################] 2/2" in captured.err  # the progress bar
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == sorted(
        ["recall_at_k.png", "context_vs_recall.png", "latency.png"]
    )
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["questions"] == 2
    assert report["metadata"]["text_embedder_model"].endswith("all-MiniLM-L6-v2")
