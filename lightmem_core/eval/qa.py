"""Question answering over retrieved memories, scored by an LLM judge.

API::

    evaluate_qa(memory, llm, questions, *, k=10, judge=None, progress=None) -> dict
    answer_question(llm, question, memories, *, question_date=None, max_tokens=100) -> str
    judge_answer(llm, question, gold, answer, *, max_attempts=3) -> (correct: bool, reason: str)
    run_metadata(memory, llm, judge=None, k=10) -> dict     # commit, config hash, models
    format_qa(report) -> str                                # the accuracy table

For each question: ``memory.search(question, limit=k)`` (the pipeline's retrieval), then ONE call
to ``llm`` that answers from those memories (:data:`ANSWER_PROMPT`: short answers, relative
times resolved with the memories' dates, ``unknown`` when the memories do not say); the latency
of a question is retrieval + answer. Then the judge (``judge``, default the same ``llm``) compares
the answer with the gold answer and returns JSON ``{"verdict": "correct" | "incorrect",
"reason": ...}`` (:data:`JUDGE_PROMPT`, schema :data:`JUDGE_SCHEMA`, validated and retried like
every structured answer). A question without a gold answer (LoCoMo's adversarial category) is
answered but not judged and left out of the accuracy.

The calls are counted apart (``usage.answer`` / ``usage.judge``) and, when ``llm`` is the
memory's own accounted manager, booked in its record store under the operations ``qa_answer``
and ``qa_judge`` (so ``get_token_statistics()`` shows them beside ``extract`` and ``update``).
"""

from __future__ import annotations

import datetime as dt
import string
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from lightmem_hookspecs import MemoryEntry

from .economy import CountingLLM
from .metrics import mean, percentile
from .provenance import git_commit, hash_config

__all__ = [
    "ANSWER_PROMPT",
    "JUDGE_PROMPT",
    "JUDGE_SCHEMA",
    "answer_question",
    "evaluate_qa",
    "format_qa",
    "judge_answer",
    "run_metadata",
]

ANSWER_PROMPT = """\
Answer a question about past conversations, using only the memories below. Each memory starts
with the date and time it comes from.

Memories:
$memories

Question: $question$question_date

How to answer:
- Answer in as few words as possible: a name, a date, a number or a short phrase.
- Turn relative times ("yesterday", "last year", "next month") into dates, counting from the
  date of the memory that mentions them.
- If the memories do not contain the answer, answer: unknown.

Answer:"""

JUDGE_PROMPT = """\
Grade an answer to a question about a conversation, comparing it with the gold answer.

Question: $question
Gold answer: $gold
Answer to grade: $answer

The answer is correct if it gives the same information as the gold answer, even when it is
worded differently, shorter or longer, or writes a date or a number in another form (a date a
few days off from a relative gold date such as "the week before 9 June" still counts). It is
incorrect if it contradicts the gold answer, misses its point, or says it does not know.

Answer with one JSON object and nothing else:
{"verdict": "correct" or "incorrect", "reason": "a few words on why"}"""

JUDGE_SCHEMA: dict[str, Any] = {
    "title": "lightmem_judge",
    "type": "object",
    "properties": {
        "verdict": {"type": "string", "enum": ["correct", "incorrect"]},
        "reason": {"type": "string"},
    },
    "required": ["verdict", "reason"],
    "additionalProperties": False,
}

CATEGORY_NAMES = {
    1: "multi-hop",
    2: "temporal",
    3: "open-domain",
    4: "single-hop",
    5: "adversarial",
}


def memory_line(entry: MemoryEntry | str) -> str:
    """How one memory is shown to the answering model: date, weekday, speaker, text."""
    if isinstance(entry, str):
        return entry
    text = " ".join(entry.memory.split())
    speaker = entry.speaker_name
    if speaker and not text.lower().startswith(speaker.lower()):
        text = f"{speaker}: {text}"
    if entry.time_stamp is None:
        return text
    return f"{entry.time_stamp:%Y-%m-%d %H:%M} ({entry.weekday}) {text}"


def answer_question(
    llm: Any,
    question: str,
    memories: Sequence[MemoryEntry | str],
    *,
    question_date: str | None = None,
    max_tokens: int = 100,
) -> str:
    """ONE call: the answer to ``question`` from ``memories`` (best first), stripped."""
    shown = "\n".join(f"- {memory_line(m)}" for m in memories) or "(no memories)"
    when = f"\n(The question is asked on {question_date}.)" if question_date else ""
    prompt = string.Template(ANSWER_PROMPT).substitute(
        memories=shown, question=" ".join(question.split()), question_date=when
    )
    completion = llm.complete([{"role": "user", "content": prompt}], max_tokens=max_tokens)
    answer = " ".join((completion.text or "").split())
    return answer.removeprefix("Answer:").strip()


def judge_answer(
    llm: Any,
    question: str,
    gold: str,
    answer: str,
    *,
    max_attempts: int = 3,
    prompt: str | None = None,
) -> tuple[bool, str]:
    """Ask the judge whether ``answer`` matches ``gold``: ``(correct, reason)``.

    ``prompt``: the whole judging prompt instead of :data:`JUDGE_PROMPT` (a benchmark's own
    criteria); it must ask for the JSON of :data:`JUDGE_SCHEMA`.

    Raises :class:`~lightmem_core.llm.structured.StructuredOutputError` when the judge never
    answers JSON of :data:`JUDGE_SCHEMA`.
    """
    from ..llm.structured import ask_json

    if prompt is None:
        prompt = string.Template(JUDGE_PROMPT).substitute(
            question=" ".join(question.split()),
            gold=" ".join(str(gold).split()),
            answer=" ".join(answer.split()) or "(no answer)",
        )
    reply = ask_json(
        llm,
        [{"role": "user", "content": prompt}],
        JUDGE_SCHEMA,
        max_attempts=max_attempts,
        max_tokens=200,
        what="judge verdict",
    )
    return reply.value["verdict"] == "correct", " ".join(str(reply.value["reason"]).split())


def run_metadata(memory: Any, llm: Any, judge: Any = None, k: int = 10) -> dict[str, Any]:
    """Commit, configuration hash and models of a QA run."""
    embedder = memory.embedder
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git": git_commit(),
        "config_hash": hash_config(memory.config),
        "models": {
            "answer": getattr(llm, "model_name", None),
            "judge": getattr(judge if judge is not None else llm, "model_name", None),
            "text_embedder": getattr(embedder, "model_name", None),
            "retrieve_strategy": memory.config.retrieve_strategy,
        },
        "k": k,
    }


def _category(category: Any) -> str:
    return str(category)


def evaluate_qa(
    memory: Any,
    llm: Any,
    questions: Sequence[Any],
    *,
    k: int = 10,
    judge: Any = None,
    progress: Callable[[str], None] | None = None,
    metadata: bool = True,
    judge_prompt: Callable[[Any, str], str] | None = None,
) -> dict[str, Any]:
    """Answer and judge every question (``datasets.Question`` objects); return the report.

    ``judge_prompt(question, answer)``: the judging prompt of a benchmark with its own criteria
    (default: :data:`JUDGE_PROMPT`).

    ``memory``: the :class:`~lightmem_core.memory.LightMemory` holding the conversation;
    ``llm``: the answering model (e.g. ``memory.backends.get("memory_manager")``); ``judge``:
    the judging model (default: ``llm``).
    """
    counter = CountingLLM(llm)
    judge_counter = counter if judge is None else CountingLLM(judge)
    records: list[dict[str, Any]] = []
    latencies: list[float] = []
    retrieval_ms: list[float] = []
    answer_ms: list[float] = []
    for n, q in enumerate(questions, start=1):
        t0 = time.perf_counter()
        hits = memory.search(q.question, limit=k)
        t1 = time.perf_counter()
        entries = [h.entry for h in hits if h.entry is not None]
        counter.phase = "answer"
        answer = memory.run_operation(
            "qa_answer",
            lambda q=q, entries=entries: answer_question(
                counter, q.question, entries, question_date=getattr(q, "question_date", None)
            ),
        )
        t2 = time.perf_counter()
        retrieval_ms.append((t1 - t0) * 1000)
        answer_ms.append((t2 - t1) * 1000)
        latencies.append((t2 - t0) * 1000)
        correct: bool | None = None
        reason = ""
        if q.answer is not None and str(q.answer).strip():
            judge_counter.phase = "judge"
            correct, reason = memory.run_operation(
                "qa_judge",
                lambda q=q, answer=answer: judge_answer(
                    judge_counter,
                    q.question,
                    str(q.answer),
                    answer,
                    prompt=None if judge_prompt is None else judge_prompt(q, answer),
                ),
            )
        records.append(
            {
                "id": q.id,
                "category": q.category,
                "question": q.question,
                "gold": q.answer,
                "answer": answer,
                "correct": correct,
                "reason": reason,
                "memories": [e.id for e in entries],
                "latency_ms": round(latencies[-1], 3),
            }
        )
        if progress is not None:
            progress(f"question {n}/{len(questions)}")
    report = summarize_qa(records)
    report["latency_ms"] = {
        "p50": percentile(latencies, 50),
        "p95": percentile(latencies, 95),
        "retrieval_p50": percentile(retrieval_ms, 50),
        "retrieval_p95": percentile(retrieval_ms, 95),
        "answer_p50": percentile(answer_ms, 50),
        "answer_p95": percentile(answer_ms, 95),
    }
    report["usage"] = {
        "answer": counter.get("answer").as_dict(),
        "judge": judge_counter.get("judge").as_dict(),
    }
    if metadata:
        report["metadata"] = run_metadata(memory, llm, judge, k)
    report["records"] = records
    return report


def summarize_qa(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Accuracy overall and per category over the judged records (``correct`` not None)."""
    judged = [r for r in records if r.get("correct") is not None]
    by_category: dict[str, dict[str, Any]] = {}
    for category in sorted({_category(r["category"]) for r in judged}):
        mine = [r for r in judged if _category(r["category"]) == category]
        right = sum(1 for r in mine if r["correct"])
        by_category[category] = {
            "name": CATEGORY_NAMES.get(int(category)) if category.isdigit() else None,
            "accuracy": right / len(mine),
            "correct": right,
            "questions": len(mine),
        }
    right = sum(1 for r in judged if r["correct"])
    return {
        "accuracy": mean([1.0 if r["correct"] else 0.0 for r in judged]),
        "correct": right,
        "judged": len(judged),
        "questions": len(records),
        "by_category": by_category,
    }


def merge_qa(reports: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One report over several conversations' QA reports (records pooled, latencies re-ranked)."""
    records = [r for report in reports for r in report["records"]]
    out = summarize_qa(records)
    latencies = [r["latency_ms"] for r in records]
    out["latency_ms"] = {"p50": percentile(latencies, 50), "p95": percentile(latencies, 95)}
    usage: dict[str, dict[str, int]] = {}
    for report in reports:
        for phase, counters in report.get("usage", {}).items():
            slot = usage.setdefault(phase, {})
            for key, value in counters.items():
                slot[key] = slot.get(key, 0) + value
    out["usage"] = usage
    return out


def format_qa(report: Mapping[str, Any]) -> str:
    """One line per category, then the overall accuracy and latency."""
    lines = []
    for category, row in report["by_category"].items():
        name = f" {row['name']}" if row.get("name") else ""
        lines.append(
            f"QA cat{category}{name}: {row['accuracy']:.3f} ({row['correct']}/{row['questions']})"
        )
    latency = report.get("latency_ms") or {}
    lines.append(
        f"QA accuracy {report['accuracy']:.3f} ({report['correct']}/{report['judged']} judged), "
        f"latency (retrieval + answer) p50 {latency.get('p50', float('nan')):.1f} ms, "
        f"p95 {latency.get('p95', float('nan')):.1f} ms"
    )
    return "\n".join(lines)
