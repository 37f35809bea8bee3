"""``lightmem eval longmemeval``: turn and session recall on LongMemEval, beside raw-turn baselines.

LongMemEval (Wu et al., ICLR 2025) asks each question over its own chat history (the
*haystack*: ~50 sessions in the S split). For every question the harness builds a fresh memory,
ingests the haystack sessions in time order (each session's date is its messages' time stamp)
with ``add_memory(session, force_segment=True, force_extract=True)``, and asks the question with
``search(question, limit=k)``. It scores the source messages of the hits:

- **turn recall@k**: the share of the question's ``has_answer`` turns among them;
- **session recall_any / recall_all@k**: whether any / all of its evidence sessions
  (``answer_session_ids``) have a turn among them.

The raw-turn baselines (:mod:`.baselines`) index the turns of the roles the configuration's
``messages_use`` keeps and answer the same questions, at the same ``k`` and also **at equal
context**: each baseline's ranking cut to the words the pipeline returned for that question.
Abstention questions (ids ending in ``_abs``) have no evidence to find and are left out of the
recall figures (they are counted; ``--qa`` answers and judges them).
"""

from __future__ import annotations

import shutil
import string
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import attrs

from ..datasets import Conversation, Question, longmemeval_conversation, read_json_or_jsonl
from ..errors import InputError
from .baselines import BASELINES, TurnBaselines, build_bm25
from .locomo import (
    Progress,
    _add_usage,
    _cell,
    _default_embedder,
    _load_config,
    _models,
    _run_line,
    finish_report,
)
from .metrics import mean, percentile, word_count
from .provenance import git_commit, hash_config
from .stores import reusable, stamp_of, write_stamp

PIPELINE = "lightmem"
#: Suffix of a baseline cut to the pipeline's words per question.
EQUAL = "@words"
TYPES = (
    "single-session-user",
    "single-session-assistant",
    "single-session-preference",
    "multi-session",
    "knowledge-update",
    "temporal-reasoning",
)
SHORT = {
    "single-session-user": "ssu",
    "single-session-assistant": "ssa",
    "single-session-preference": "ssp",
    "multi-session": "ms",
    "knowledge-update": "ku",
    "temporal-reasoning": "tr",
}
#: The types whose evidence is what the user said (``messages_use: user_only`` can answer them).
USER_TYPES = tuple(t for t in TYPES if t != "single-session-assistant")
#: Depth of the baselines' rankings before the cut to the pipeline's words.
EQUAL_DEPTH = 100


@attrs.frozen
class LongMemEvalOptions:
    """What one run does (the CLI's arguments, as a value)."""

    data: str
    ids: tuple[str, ...] | None = None
    k: int = 10
    config: Mapping[str, Any] | str | None = None
    out: str | None = None
    memory_dir: str | None = None
    baselines: bool = True
    qa: bool = False
    #: Search the stores an earlier run left in ``memory_dir`` instead of ingesting again
    #: (:mod:`lightmem_core.eval.stores`).
    reuse: bool = False


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------


def read_ids(path: str | Path) -> tuple[str, ...]:
    """Question ids, one a line (blank lines and ``#`` comments skipped)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"--ids: {p}: no such file; give a file with one question id a line")
    ids = []
    for line in p.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            ids.append(line)
    if not ids:
        raise InputError(f"--ids: {p} lists no question id")
    return tuple(dict.fromkeys(ids))


def _samples_of(data: Any, where: str) -> list[Mapping[str, Any]]:
    items = data if isinstance(data, list) else [data]
    for i, item in enumerate(items):
        if not isinstance(item, Mapping) or "haystack_sessions" not in item:
            raise InputError(
                f"{where}[{i}]: expected a LongMemEval sample (an object with "
                "'question_id', 'question' and 'haystack_sessions')"
            )
    return list(items)


def _matches(stem: str, wanted: set[str]) -> bool:
    # "001be529.json" or a name that ends with the id ("47_001be529.json")
    return stem in wanted or any(stem.endswith(f"_{i}") for i in wanted)


def load_longmemeval(path: str | Path, ids: Iterable[str] | None = None) -> list[Conversation]:
    """The questions of ``path`` (a folder of per-question JSON files, or one JSON / JSONL file
    of samples) as conversations: in file order, or only ``ids`` in their order when given
    (each must be found)."""
    p = Path(path)
    order = None if ids is None else {i: n for n, i in enumerate(dict.fromkeys(ids))}
    wanted = None if order is None else set(order)
    samples: list[tuple[Mapping[str, Any], str]] = []
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix.lower() in (".json", ".jsonl"))
        if not files:
            raise InputError(f"--data: {p} holds no .json or .jsonl file")
        if wanted is not None and any(_matches(f.stem, wanted) for f in files):
            files = [f for f in files if _matches(f.stem, wanted)]
        for f in files:
            for i, s in enumerate(_samples_of(read_json_or_jsonl(f), str(f))):
                samples.append((s, f"{f}[{i}]"))
    elif p.is_file():
        for i, s in enumerate(_samples_of(read_json_or_jsonl(p), str(p))):
            samples.append((s, f"{p}[{i}]"))
    else:
        raise InputError(f"--data: {p}: no such file or folder")
    if wanted is not None and order is not None:
        samples = [(s, w) for s, w in samples if str(s.get("question_id")) in wanted]
        samples.sort(key=lambda p: order[str(p[0].get("question_id"))])
        found = {str(s.get("question_id")) for s, _ in samples}
        missing = sorted(wanted - found)
        if missing:
            raise InputError(
                f"--ids: {len(missing)} question id(s) not in {p}: {', '.join(missing[:10])}"
                f"{' ...' if len(missing) > 10 else ''}"
            )
    return [longmemeval_conversation(s, where=w) for s, w in samples]


def session_of(message_id: str, question_id: str) -> str:
    """The haystack session id of a message id ``{question_id}:{session_id}:{turn}``."""
    return message_id[len(question_id) + 1 :].rsplit(":", 1)[0]


def is_abstention(question: Question) -> bool:
    return question.id.endswith("_abs")


# ---------------------------------------------------------------------------------------------
# Scores
# ---------------------------------------------------------------------------------------------


def question_scores(
    question: Question, ranked: Sequence[Sequence[str]], ks: Sequence[int]
) -> dict[str, float | None]:
    """``turn@k``, ``session_any@k``, ``session_all@k`` for each ``k`` in ``ks``; ``None``
    where the question has nothing to find (no marked turns; no evidence sessions)."""
    marked = question.metadata.get("evidence_turns_marked", True)
    turns = set(question.evidence) if marked else set()
    sessions = set(question.evidence_sessions)
    out: dict[str, float | None] = {}
    for k in ks:
        sources = {s for hit in ranked[:k] for s in hit}
        found = {session_of(s, question.id) for s in sources}
        out[f"turn@{k}"] = len(turns & sources) / len(turns) if turns else None
        out[f"session_any@{k}"] = float(bool(sessions & found)) if sessions else None
        out[f"session_all@{k}"] = float(sessions <= found) if sessions else None
    return out


def cut_to_words(ids: Sequence[str], words_of: Mapping[str, int], budget: int) -> list[str]:
    """The longest prefix of ``ids`` whose words sum to at most ``budget``."""
    out, total = [], 0
    for i in ids:
        total += words_of.get(i, 0)
        if total > budget:
            break
        out.append(i)
    return out


@attrs.define
class Scores:
    """One system's per-question scores, words and latencies."""

    rows: list[dict[str, Any]] = attrs.field(factory=list)
    ingest_s: float = 0.0
    turns: int = 0

    def add(self, qtype: str, scores: Mapping[str, float | None], words: int, ms: float) -> None:
        self.rows.append({"type": qtype, "scores": dict(scores), "words": words, "ms": ms})

    def merge(self, other: Scores) -> None:
        self.rows += other.rows
        self.ingest_s += other.ingest_s
        self.turns += other.turns

    def _mean(self, key: str, qtype: str | None = None) -> float:
        values = [
            r["scores"][key]
            for r in self.rows
            if (qtype is None or r["type"] == qtype) and r["scores"].get(key) is not None
        ]
        return mean(values)

    def summary(self, ks: Sequence[int]) -> dict[str, Any]:
        keys = [f"{m}@{k}" for m in ("turn", "session_any", "session_all") for k in ks]
        types = [t for t in TYPES if any(r["type"] == t for r in self.rows)]
        types += sorted({r["type"] for r in self.rows} - set(TYPES))
        by_type = {
            t: {
                **{key: self._mean(key, t) for key in keys},
                "questions": sum(1 for r in self.rows if r["type"] == t),
                "context_words": mean(r["words"] for r in self.rows if r["type"] == t),
            }
            for t in types
        }
        k = max(ks)
        user = [by_type[t][f"turn@{k}"] for t in USER_TYPES if t in by_type]
        latencies = [r["ms"] for r in self.rows]
        return {
            **{key: self._mean(key) for key in keys},
            f"turn@{k}_user_types": mean(v for v in user if v == v),
            "by_type": by_type,
            "questions": len(self.rows),
            "context_words": mean(r["words"] for r in self.rows),
            "ingest_turns_per_s": self.turns / self.ingest_s if self.ingest_s > 0 else None,
            "ingest_s": self.ingest_s,
            "turns": self.turns,
            "search_ms_p50": percentile(latencies, 50),
            "search_ms_p95": percentile(latencies, 95),
            "search_ms": latencies,
        }


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


def _kept_roles(messages_use: str) -> set[str]:
    return {"user_only": {"user"}, "assistant_only": {"assistant"}}.get(
        messages_use, {"user", "assistant"}
    )


def bar(done: int, total: int, width: int = 24) -> str:
    """``[#########...............]  9/24``."""
    filled = int(width * done / total) if total else width
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total}"


def evaluate_longmemeval(
    options: LongMemEvalOptions, *, progress: Progress | None = None, host: Any = None
) -> dict[str, Any]:
    """Run the evaluation and return the report (also written to ``options.out`` if set)."""
    from ..memory import LightMemory
    from ..plugins import PluginHost

    if options.k < 1:
        raise InputError(f"--k: expected a positive integer, got {options.k}")
    progress = progress or Progress()
    conversations = load_longmemeval(options.data, options.ids)
    raw_config = _load_config(options.config)
    ks = sorted({k for k in (1, 5, options.k) if k <= options.k})
    host = host or PluginHost()
    names = [PIPELINE]
    if options.baselines:
        names += [*BASELINES, *(b + EQUAL for b in BASELINES)]
    totals = {name: Scores() for name in names}
    per_question: list[dict[str, Any]] = []
    qa_reports: list[dict[str, Any]] = []
    qa_meta: dict[str, Any] | None = None
    usage_total: dict[str, Any] | None = None
    models: dict[str, Any] = {}
    config_hash = ""
    abstentions = 0
    started = time.perf_counter()

    def build_report(done: int) -> dict[str, Any]:
        """The report over the first ``done`` questions, written to ``options.out`` if set."""
        systems = {name: s.summary(ks) for name, s in totals.items()}
        report: dict[str, Any] = {
            "benchmark": "longmemeval",
            "metadata": {
                "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "git": git_commit(),
                "data": str(options.data),
                "ids": len(options.ids) if options.ids else None,
                "config_hash": config_hash,
                **models,
                "seconds": round(time.perf_counter() - started, 1),
            },
            "k": options.k,
            "ks": ks,
            "questions": done,
            "planned": len(conversations),
            "abstentions": abstentions,
            "systems": systems,
            "usage": usage_total,
            "per_question": per_question,
        }
        return finish_report(report, options, qa_reports, qa_meta)

    previous: Any = None  # the last question's memory, open until the next loads the model

    with ExitStack() as stack:
        if options.memory_dir is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="lightmem-lme-")))
        else:
            root = Path(options.memory_dir)
            root.mkdir(parents=True, exist_ok=True)
        stack.callback(lambda: previous is not None and previous.close())  # before the folder
        for n, conv in enumerate(conversations, start=1):
            q = conv.questions[0]
            qtype = str(q.category)
            head = f"{bar(n - 1, len(conversations))} {conv.sample_id} ({SHORT.get(qtype, qtype)})"
            store_dir = root / conv.sample_id
            stamp = stamp_of(conv.sample_id, conv.messages, raw_config)
            reused = reusable(store_dir, stamp, reuse=options.reuse)
            config = {**raw_config, "memory_dir": str(store_dir)}
            config.pop("history_db_path", None)
            memory = LightMemory(config, host=host)
            try:
                llm = memory.llm
                if options.qa and llm is None:
                    raise InputError("--qa needs a memory_manager in the configuration")
                if not config_hash:
                    config_hash = hash_config(memory.config)
                    models = _models(memory)
                memory.warm_up()
                if previous is not None:
                    # closed only now: the next memory's embedder took the loaded model over
                    previous.close()
                    previous = None
                roles = _kept_roles(memory.config.messages_use)
                turns = [m for m in conv.messages if m["role"] in roles]
                scores = {name: Scores() for name in names}
                pipe = scores[PIPELINE]
                done, total = 0, len(conv.messages)
                for session in () if reused else conv.sessions:
                    t0 = time.perf_counter()
                    memory.add_memory(
                        list(session.messages), force_segment=True, force_extract=True
                    )
                    pipe.ingest_s += time.perf_counter() - t0
                    done += len(session.messages)
                    progress.update(f"{head} ingesting {done}/{total} turns")
                # The last entries' vectors wait for the next search: write them now, so the
                # ingest time has all of the work and the search time none of it.
                if not reused:
                    t0 = time.perf_counter()
                    memory.flush_vectors()
                    pipe.ingest_s += time.perf_counter() - t0
                pipe.turns = 0 if reused else len(turns)  # no throughput for a reused store
                if not reused and llm is not None and memory.config.update == "offline":
                    progress.update(f"{head} offline update", force=True)
                    memory.construct_update_queue_all_entries()
                    memory.offline_update_all_entries()
                if not reused:
                    write_stamp(store_dir, stamp)
                usage = memory.get_token_statistics()
                usage_total = _add_usage(usage_total, usage)

                baselines = None
                if options.baselines:
                    progress.update(f"{head} indexing raw turns for the baselines")
                    bm25_dir = root / f"{conv.sample_id}-bm25"
                    if reused:  # the baselines' index of the earlier run: built again
                        shutil.rmtree(bm25_dir, ignore_errors=True)
                    bm25 = build_bm25(memory.resolved, str(bm25_dir))
                    embedder = memory.embedder or _default_embedder(host, str(root))
                    baselines = TurnBaselines(embedder, bm25, memory.config.hybrid_weights)
                    baselines.ingest(turns)
                    t = baselines.timings
                    spent = {
                        "dense-turns": t.embed_s,
                        "bm25-turns": t.bm25_index_s,
                        "fusion-turns": t.embed_s + t.bm25_index_s,
                    }
                    for name, seconds in spent.items():
                        for variant in (name, name + EQUAL):
                            scores[variant].turns = len(turns)
                            scores[variant].ingest_s = seconds

                record: dict[str, Any] = {
                    "id": q.id,
                    "type": qtype,
                    "question_date": q.question_date,
                    "evidence_turns": list(q.evidence)
                    if q.metadata.get("evidence_turns_marked", True)
                    else [],
                    "evidence_sessions": list(q.evidence_sessions),
                }
                if is_abstention(q):
                    abstentions += 1
                    record["abstention"] = True
                else:
                    progress.update(f"{head} searching")
                    t0 = time.perf_counter()
                    hits = memory.search(q.question, limit=options.k)
                    ms = (time.perf_counter() - t0) * 1000
                    ranked = [tuple(h.entry.source_message_ids) for h in hits if h.entry]
                    words = sum(word_count(h.entry.memory) for h in hits if h.entry)
                    found = question_scores(q, ranked, ks)
                    pipe.add(qtype, found, words, ms)
                    record[PIPELINE] = {"scores": found, "words": words, "sources": ranked}
                    if baselines is not None:
                        words_of = {m["id"]: word_count(str(m["content"])) for m in turns}
                        results = baselines.search(q.question, options.k, depth=EQUAL_DEPTH)
                        for name, (ids, seconds) in results.items():
                            for variant, chosen in (
                                (name, ids[: options.k]),
                                (name + EQUAL, cut_to_words(ids, words_of, words)),
                            ):
                                ranked_ids = [(x,) for x in chosen]
                                found = question_scores(q, ranked_ids, ks)
                                used = sum(words_of.get(x, 0) for x in chosen)
                                scores[variant].add(qtype, found, used, seconds * 1000)
                                record[variant] = {"scores": found, "words": used, "ids": chosen}
                if baselines is not None:
                    baselines.close()
                if options.qa:
                    from .qa import evaluate_qa, run_metadata

                    def judge_prompt(question: Any, answer: str) -> str:
                        return judge_prompt_for(question, answer)

                    qa = evaluate_qa(
                        memory,
                        llm,
                        [q],
                        k=options.k,
                        metadata=False,
                        judge_prompt=judge_prompt,
                    )
                    qa_reports.append(qa)
                    qa_meta = qa_meta or run_metadata(memory, llm, k=options.k)
            except BaseException:
                memory.close()
                raise
            previous = memory
            per_question.append(record)
            for name, s in scores.items():
                totals[name].merge(s)
            rate = pipe.turns / pipe.ingest_s if pipe.ingest_s else 0.0
            turn_k = (record.get(PIPELINE) or {}).get("scores", {}).get(f"turn@{options.k}")
            shown = "-" if turn_k is None else f"{turn_k:.2f}"
            progress.update(
                f"{bar(n, len(conversations))} {conv.sample_id}: {pipe.turns} turns at "
                f"{rate:.0f}/s, turn recall@{options.k} {shown}",
                force=n == len(conversations),
            )
            if options.out and n < len(conversations):
                build_report(n)  # the results so far survive an interrupted run

    return build_report(len(conversations))


# ---------------------------------------------------------------------------------------------
# Judging (the benchmark's own criteria, per question type)
# ---------------------------------------------------------------------------------------------

_JUDGE_HEAD = """\
I will give you a question, a correct answer, and a response from a model. $rule

Question: $question

Correct Answer: $gold

Model Response: $answer

Is the model response correct? Answer with one JSON object and nothing else:
{"verdict": "correct" or "incorrect", "reason": "a few words on why"}"""

_RULES = {
    "default": (
        "Judge the response correct if it contains the correct answer. It is also correct if "
        "it is equivalent to the correct answer or contains all the intermediate steps needed "
        "to reach it. If the response gives only part of the required answer, it is incorrect."
    ),
    "temporal-reasoning": (
        "Judge the response correct if it contains the correct answer. It is also correct if "
        "it is equivalent to the correct answer or contains all the intermediate steps needed "
        "to reach it. If the response gives only part of the required answer, it is incorrect. "
        "Do not penalize off-by-one errors in the number of days, weeks or months: a response "
        "of 19 days where the answer is 18 counts as correct."
    ),
    "knowledge-update": (
        "Judge the response correct if it contains the correct answer. If the response also "
        "mentions earlier information beside the updated answer, it is still correct as long "
        "as the updated answer is the one it gives."
    ),
    "single-session-preference": (
        "The correct answer is a rubric of what the user would want. Judge the response "
        "correct if it recalls and uses the user's personal information correctly; it does "
        "not need to satisfy every point of the rubric."
    ),
    "abstention": (
        "The question cannot be answered from the conversation history. Judge the response "
        "correct if it says the question cannot be answered or that the information is not "
        "available, even if it names what would be needed."
    ),
}


def judge_prompt_for(question: Question, answer: str) -> str:
    """The LongMemEval judging criteria for ``question``'s type, as a prompt for the judge."""
    kind = "abstention" if is_abstention(question) else str(question.category)
    rule = _RULES.get(kind, _RULES["default"])
    return string.Template(_JUDGE_HEAD).substitute(
        rule=rule,
        question=" ".join(question.question.split()),
        gold=" ".join(str(question.answer or "").split()),
        answer=" ".join(answer.split()) or "(no answer)",
    )


# ---------------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------------


def format_report(report: Mapping[str, Any]) -> str:
    """The comparison table printed at the end of a run."""
    k = report["k"]
    k5 = 5 if 5 in report["ks"] else k
    systems = report["systems"]
    types = [t for t in TYPES if any(t in s["by_type"] for s in systems.values())]
    scored = next(iter(systems.values()))["questions"] if systems else 0
    lines = [
        f"LongMemEval turn recall@{k} per question type: {report['questions']} questions "
        f"({scored} scored, {report['abstentions']} abstention)",
    ]
    cols = [SHORT[t] for t in types] + [
        "user5",
        f"sesAll@{k5}",
        f"sesAny@{k}",
        "words",
        "turns/s",
        "p50 ms",
        "p95 ms",
    ]
    width = max([14, *(len(name) + 1 for name in systems)])
    lines.append(f"{'system':<{width}}" + "".join(f"{c:>9}" for c in cols))
    for name, s in systems.items():
        cells = [_cell(s["by_type"].get(t, {}).get(f"turn@{k}"), ".3f") for t in types]
        cells += [
            _cell(s[f"turn@{k}_user_types"], ".3f"),
            _cell(s[f"session_all@{k5}"], ".3f"),
            _cell(s[f"session_any@{k}"], ".3f"),
            _cell(s["context_words"], ".0f"),
            _cell(s["ingest_turns_per_s"], ".0f"),
            _cell(s["search_ms_p50"], ".1f"),
            _cell(s["search_ms_p95"], ".1f"),
        ]
        lines.append(f"{name:<{width}}" + "".join(cells))
    lines.append(
        f"user5: turn recall@{k} averaged over the five types but single-session-assistant; "
        f"{EQUAL}: the baseline cut to the words the pipeline returned for each question"
    )
    if report.get("qa"):
        from .qa import format_qa

        lines.append(format_qa(report["qa"]))
    lines.append(_run_line(report["metadata"]))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# CLI entry
# ---------------------------------------------------------------------------------------------


def options_from_args(args: Any) -> LongMemEvalOptions:
    return LongMemEvalOptions(
        data=args.data,
        ids=read_ids(args.ids) if getattr(args, "ids", None) else None,
        k=args.k,
        config=getattr(args, "config", None),
        out=getattr(args, "out", None),
        memory_dir=getattr(args, "memory_dir", None),
        baselines=not getattr(args, "no_baselines", False),
        qa=bool(getattr(args, "qa", False)),
        reuse=bool(getattr(args, "reuse", False)),
    )


def run_longmemeval(args: Any) -> int:
    """``lightmem eval longmemeval``: run, print the table on stdout, write the JSON report."""
    options = options_from_args(args)
    progress = Progress(enabled=not getattr(args, "quiet", False))
    report = evaluate_longmemeval(options, progress=progress)
    print(format_report(report))
    if getattr(args, "plot", None):
        from .plots import plot_report

        for path in plot_report(report, args.plot):
            print(f"plot written to {path}", file=sys.stderr)
    if options.out:
        print(f"report written to {options.out}", file=sys.stderr)
    return 0
