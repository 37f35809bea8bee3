"""The LLM side of the evaluation harness: economy (LightMem vs a per-message reference) and QA.

A real loopback OpenAI-compatible server answers (the scripted competent model of
``lightmem_core.eval.economy``); the real `openai` client and the embedded backends run.
"""

from __future__ import annotations

import json
import re

import pytest

pytest.importorskip("lightmem_openai", reason="lightmem-openai is not installed")
for _module in ("lightmem_huggingface", "lightmem_qdrant", "lightmem_sqlite_index"):
    pytest.importorskip(_module, reason="the embedded default plugins are not installed")

from lightmem_core import LightMemory  # noqa: E402
from lightmem_core.datasets import Conversation, Question, Session  # noqa: E402
from lightmem_core.eval.economy import measure_economy, scripted_responder  # noqa: E402
from lightmem_core.eval.qa import evaluate_qa  # noqa: E402

SESSION_1 = (
    {"role": "user", "content": "I live in Lisbon and work as a data engineer."},
    {"role": "user", "content": "My dog is a border collie named Biscuit."},
    {"role": "user", "content": "On weekends I climb at the bouldering gym near the river."},
)
SESSION_2 = (
    {"role": "user", "content": "I moved to Porto last month, I no longer live in Lisbon."},
    {"role": "user", "content": "Biscuit loves the beach at Matosinhos."},
    {"role": "user", "content": "I started learning the cello in March."},
)


def _session(sid: str, date: str, turns: tuple[dict, ...]) -> Session:
    messages = tuple(
        {
            **t,
            "time_stamp": f"{date}T10:0{i}:00",
            "speaker_name": "Alice",
            "speaker_id": "speaker_a",
            "id": f"{sid}:{i + 1}",
        }
        for i, t in enumerate(turns)
    )
    return Session(sid, date, messages)


CONV = Conversation(
    sample_id="synthetic",
    format="locomo",
    sessions=(
        _session("D1", "2024-03-02", SESSION_1),
        _session("D2", "2024-04-10", SESSION_2),
    ),
    questions=(
        Question("q1", "Where does Alice live now?", "Porto", category=4, evidence=("D2:1",)),
        Question("q2", "What is the name of Alice's dog?", "Biscuit", category=1),
        Question("q3", "What did Alice say about whales?", None, category=5),
    ),
)


def _config(server, tmp_path, **extra):
    return {
        "memory_manager": {
            "model_name": "openai",
            "configs": {
                "model": "gpt-4o-mini",
                "openai_base_url": server.base_url,
                "max_tokens": 4000,
            },
        },
        "embedding_retriever": {
            "model_name": "qdrant",
            "configs": {"path": str(tmp_path / "qdrant"), "embedding_model_dims": 384},
        },
        **extra,
    }


@pytest.mark.slow
def test_economy_counts_lightmem_batches_and_the_per_message_reference(openai_server, tmp_path):
    openai_server.responder = scripted_responder
    # a short-term buffer smaller than one session: each session end flushes one batch
    config = _config(openai_server, tmp_path, short_term_buffer_tokens=20)
    report = measure_economy([CONV], config, server=openai_server)
    [sample] = report["samples"]
    lm, ref = sample["lightmem"], sample["reference"]

    assert lm["batches_extracted"] == 2 and lm["batches_pending"] == 0
    assert lm["ingest"]["llm_calls"] == 2  # exactly one extraction call per flushed batch
    assert lm["server_requests"]["ingest"] == 2
    assert lm["server_requests"]["update"] == lm["update"]["llm_calls"]
    assert lm["entries"] == 6  # one fact per message from the scripted model
    assert lm["ingest"]["prompt_tokens"] > 0 and lm["ingest"]["completion_tokens"] > 0

    assert ref["messages"] == 6 and ref["facts"] == 6
    assert ref["ingest"]["llm_calls"] == 6  # one extraction call per message
    assert ref["update"]["llm_calls"] == 5  # one reconcile call per fact (none for the first)
    assert ref["server_requests"] == 11
    assert ref["embed_calls"] == 6

    lm_calls = lm["total"]["llm_calls"]
    assert sample["ratio"]["calls"] == round(11 / lm_calls, 2)
    assert sample["ratio"]["ingest_calls"] == 3.0
    assert report["totals"]["reference"]["total"]["llm_calls"] == 11
    assert len(openai_server.chat_requests) == lm_calls + 11

    # every extraction request of LightMem showed a whole session; the reference one message
    extraction = [r for r in openai_server.chat_requests if "lightmem_extraction" in r.raw.decode()]
    assert len(extraction) == 2 + 6
    first = json.dumps(extraction[0].json["messages"])
    assert all(t["content"] in first for t in SESSION_1)
    assert not any(t["content"] in first for t in SESSION_2)
    single = json.dumps(extraction[2].json["messages"])
    assert SESSION_1[0]["content"] in single and SESSION_1[1]["content"] not in single


@pytest.mark.slow
def test_default_thresholds_flush_one_batch_for_a_short_conversation(openai_server, tmp_path):
    openai_server.responder = scripted_responder
    report = measure_economy([CONV], _config(openai_server, tmp_path), reference=False)
    [sample] = report["samples"]
    # 6 short turns stay under the 512-token short-term buffer: the last session's
    # force_extract flushes them all in ONE call
    assert sample["lightmem"]["ingest"]["llm_calls"] == 1
    assert sample["lightmem"]["entries"] == 6
    assert "reference" not in sample and "ratio" not in report["totals"]


def _qa_responder(body):
    schema = (body.get("response_format") or {}).get("json_schema", {}).get("schema", {})
    prompt = "\n".join(m["content"] for m in body["messages"])
    if schema.get("title") == "lightmem_judge":
        gold = re.search(r"^Gold answer: (.*)$", prompt, re.M).group(1)
        answer = re.search(r"^Answer to grade: (.*)$", prompt, re.M).group(1)
        verdict = "correct" if gold.lower() in answer.lower() else "incorrect"
        return json.dumps({"verdict": verdict, "reason": "compared with the gold answer"})
    if "Question: Where does Alice live now?" in prompt:
        return "Answer: Porto" if "Porto" in prompt else "unknown"
    if "Question: What is the name" in prompt:
        return "Rex"  # wrong on purpose
    if "Question:" in prompt:
        return "unknown"
    return scripted_responder(body)


@pytest.mark.slow
def test_qa_answers_from_retrieved_memories_and_the_judge_scores_them(openai_server, tmp_path):
    openai_server.responder = _qa_responder
    config = _config(openai_server, tmp_path, memory_dir=str(tmp_path / "mem"))
    with LightMemory.from_config(config) as mem:
        for session in CONV.sessions:
            mem.add_memory(list(session.messages), force_segment=True, force_extract=True)
        before = len(openai_server.chat_requests)
        llm = mem.backends.get("memory_manager")
        report = evaluate_qa(mem, llm, CONV.questions, k=3)
        stats = mem.get_token_statistics()["by_operation"]

    assert len(openai_server.chat_requests) - before == 3 + 2  # 3 answers, 2 judged
    assert report["questions"] == 3 and report["judged"] == 2
    assert report["accuracy"] == 0.5
    assert report["by_category"]["4"] | {} == {
        "name": "single-hop",
        "accuracy": 1.0,
        "correct": 1,
        "questions": 1,
    }
    assert report["by_category"]["1"]["accuracy"] == 0.0
    assert "5" not in report["by_category"]  # no gold answer: not judged
    answers = {r["id"]: (r["answer"], r["correct"]) for r in report["records"]}
    assert answers == {"q1": ("Porto", True), "q2": ("Rex", False), "q3": ("unknown", None)}
    assert len(report["records"][0]["memories"]) == 3

    # the answer prompt carried the retrieved memories with their dates
    answer_request = openai_server.chat_requests[before]
    prompt = answer_request.json["messages"][0]["content"]
    assert "Question: Where does Alice live now?" in prompt
    assert re.search(r"2024-04-10 10:00 \(Wed\) Alice: I moved to Porto", prompt)
    assert answer_request.response_format is None

    latency = report["latency_ms"]
    assert {"p50", "p95", "retrieval_p50", "answer_p50"} <= set(latency)
    assert 0 < latency["p50"] <= latency["p95"]
    assert report["usage"]["answer"]["llm_calls"] == 3
    assert report["usage"]["judge"]["llm_calls"] == 2
    assert stats["qa_answer"]["llm_calls"] == 3 and stats["qa_judge"]["llm_calls"] == 2
    meta = report["metadata"]
    assert len(meta["config_hash"]) == 16
    assert meta["models"]["answer"] == "gpt-4o-mini"
    assert meta["models"]["text_embedder"]
    assert "git" in meta


def _locomo_sample() -> dict:
    def turns(session: int, rows: list[tuple[str, str]]) -> list[dict]:
        return [
            {"speaker": who, "dia_id": f"D{session}:{i}", "text": text}
            for i, (who, text) in enumerate(rows, start=1)
        ]

    return {
        "sample_id": "syn-llm",
        "conversation": {
            "speaker_a": "Ana",
            "speaker_b": "Ben",
            "session_1_date_time": "1:56 pm on 8 May, 2023",
            "session_1": turns(
                1,
                [
                    ("Ana", "I adopted a border collie puppy called Biscuit."),
                    ("Ben", "I spent the weekend repairing my old sailboat."),
                ],
            ),
            "session_2_date_time": "10:04 am on 2 June, 2023",
            "session_2": turns(2, [("Ben", "I started a pottery class on Tuesdays.")]),
        },
        "qa": [
            {
                "question": "What is Ana's dog called?",
                "answer": "Biscuit",
                "evidence": ["D1:1"],
                "category": 4,
            },
            {
                "question": "What did Ben repair?",
                "answer": "a sailboat",
                "evidence": ["D1:2"],
                "category": 4,
            },
            {
                "question": "What class did Ben start?",
                "answer": "pottery",
                "evidence": ["D2:1"],
                "category": 1,
            },
        ],
    }


@pytest.mark.slow
def test_eval_locomo_command_reports_llm_usage_and_qa(openai_server, tmp_path, capsys):
    from lightmem_core.cli import main

    def responder(body):
        schema = (body.get("response_format") or {}).get("json_schema", {}).get("schema", {})
        if schema.get("title") == "lightmem_judge" or "Question:" not in json.dumps(body):
            return _qa_responder(body)
        return "Biscuit"  # right for the first question only

    openai_server.responder = responder
    data = tmp_path / "locomo.json"
    data.write_text(json.dumps([_locomo_sample()]), encoding="utf-8")
    config = tmp_path / "config.json"
    config.write_text(json.dumps(_config(openai_server, tmp_path)), encoding="utf-8")
    out = tmp_path / "report.json"
    args = ["eval", "locomo", "--data", str(data), "--config", str(config), "--k", "3"]
    code = main([*args, "--qa", "--no-baselines", "--out", str(out), "--quiet"])
    assert code == 0
    table = capsys.readouterr().out
    assert "LLM ingestion: 2 calls" in table  # one batch per session (force_extract each)
    assert "LLM update:" in table
    assert "QA accuracy 0.333 (1/3 judged)" in table
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["usage"]["by_operation"]["extract"]["llm_calls"] == 2
    qa = report["qa"]
    assert qa["by_category"]["4"]["correct"] == 1 and qa["by_category"]["1"]["correct"] == 0
    assert qa["usage"]["answer"]["llm_calls"] == 3 and qa["usage"]["judge"]["llm_calls"] == 3
    assert {"p50", "p95"} <= set(qa["latency_ms"])
    assert qa["metadata"]["config_hash"] == report["metadata"]["config_hash"]
    assert qa["metadata"]["models"]["answer"] == "gpt-4o-mini"
    [sample] = report["samples"]
    assert [r["answer"] for r in sample["qa"]["records"]] == ["Biscuit"] * 3


def test_qa_needs_a_memory_manager(tmp_path):
    from lightmem_core.errors import InputError
    from lightmem_core.eval.locomo import LocomoOptions, evaluate_locomo

    data = tmp_path / "locomo.json"
    data.write_text(json.dumps([_locomo_sample()]), encoding="utf-8")
    config = {"embedding_retriever": {"model_name": "qdrant", "configs": {"path": str(tmp_path)}}}
    options = LocomoOptions(data=str(data), config=config, qa=True, baselines=False)
    with pytest.raises(InputError, match="--qa needs a memory_manager"):
        evaluate_locomo(options)
