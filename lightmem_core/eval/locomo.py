"""``lightmem eval locomo``: evidence recall of the configured pipeline beside raw-turn baselines.

For each conversation of a LoCoMo-format file the harness builds a fresh memory (its own
directory), ingests the sessions in order with ``add_memory(session, force_segment=True,
force_extract=True)``, asks every question of the chosen categories with ``search(question,
limit=k)`` and scores the union of the top-k memories' source message ids against the
question's evidence turns. The raw-turn baselines (BM25, dense, their fusion; see
:mod:`.baselines`) answer the same questions in the same run.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TextIO

import attrs

from ..config import BackendSpec, load_config_file
from ..datasets import Conversation, Question, load_conversations
from ..errors import InputError
from .baselines import BASELINES, TurnBaselines, build_bm25
from .metrics import evidence_recall, mean, percentile, word_count
from .provenance import config_dict, git_commit, hash_config
from .stores import reusable, stamp_of, write_stamp

PIPELINE = "lightmem"
#: The same memory searched without its graph retriever (reported when the chain has one).
WITHOUT_GRAPH = "lightmem-without-graph"
DEFAULT_CATEGORIES: tuple[int, ...] = (1, 2, 3, 4)
CATEGORY_NAMES = {
    1: "multi-hop",
    2: "temporal",
    3: "open-domain",
    4: "single-hop",
    5: "adversarial",
}


@attrs.frozen
class LocomoOptions:
    """What one evaluation run does (the CLI's arguments, as a value)."""

    data: str
    samples: tuple[str, ...] | None = None
    k: int = 10
    config: Mapping[str, Any] | str | None = None
    out: str | None = None
    memory_dir: str | None = None
    categories: tuple[int, ...] = DEFAULT_CATEGORIES
    baselines: bool = True
    qa: bool = False
    #: Search the stores an earlier run left in ``memory_dir`` instead of ingesting again
    #: (:mod:`lightmem_core.eval.stores`).
    reuse: bool = False


# ---------------------------------------------------------------------------------------------
# Progress
# ---------------------------------------------------------------------------------------------


class Progress:
    """One-line progress on stderr (rewritten in place on a terminal, plain lines otherwise)."""

    def __init__(self, stream: TextIO | None = None, enabled: bool = True) -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last = 0.0

    def update(self, text: str, *, force: bool = False) -> None:
        if not self.enabled:
            return
        if self.tty:
            self.stream.write(f"\r\x1b[2K{text}")
            self.stream.flush()
            return
        now = time.monotonic()
        if force or now - self._last >= 5.0:
            self._last = now
            self.stream.write(text + "\n")
            self.stream.flush()

    def line(self, text: str) -> None:
        if not self.enabled:
            return
        if self.tty:
            self.stream.write("\r\x1b[2K")
        self.stream.write(text + "\n")
        self.stream.flush()


# ---------------------------------------------------------------------------------------------
# Per-system accumulation
# ---------------------------------------------------------------------------------------------


@attrs.define
class SystemScores:
    """What one system (the pipeline or a baseline) scored on a set of questions."""

    recalls: dict[int, list[float]] = attrs.field(factory=dict)  # per k (1, 5, k)
    categories: list[Any] = attrs.field(factory=list)
    words: list[int] = attrs.field(factory=list)
    latencies_ms: list[float] = attrs.field(factory=list)
    ingest_s: float = 0.0
    turns: int = 0

    def add(self, category: Any, recalls: Mapping[int, float], words: int, ms: float) -> None:
        self.categories.append(category)
        for k, value in recalls.items():
            self.recalls.setdefault(k, []).append(value)
        self.words.append(words)
        self.latencies_ms.append(ms)

    def merge(self, other: SystemScores) -> None:
        for k, values in other.recalls.items():
            self.recalls.setdefault(k, []).extend(values)
        self.categories += other.categories
        self.words += other.words
        self.latencies_ms += other.latencies_ms
        self.ingest_s += other.ingest_s
        self.turns += other.turns

    def summary(self, k: int) -> dict[str, Any]:
        main = self.recalls.get(k, [])
        by_category: dict[str, dict[str, Any]] = {}
        for category in sorted({c for c in self.categories}, key=str):
            values = [r for r, c in zip(main, self.categories, strict=True) if c == category]
            by_category[str(category)] = {"recall": mean(values), "questions": len(values)}
        return {
            f"recall@{k}": mean(main),
            "recall_at": {str(kk): mean(v) for kk, v in sorted(self.recalls.items())},
            "by_category": by_category,
            "questions": len(main),
            "context_words": mean(self.words),
            "ingest_turns_per_s": self.turns / self.ingest_s if self.ingest_s > 0 else None,
            "ingest_s": self.ingest_s,
            "turns": self.turns,
            "search_ms_p50": percentile(self.latencies_ms, 50),
            "search_ms_p95": percentile(self.latencies_ms, 95),
            "search_ms": [round(v, 3) for v in self.latencies_ms],
        }


def _recalls_at(
    ks: Sequence[int], evidence: Sequence[str], ranked: Sequence[Sequence[str]]
) -> dict[int, float]:
    """Recall at each cut-off in ``ks``; ``ranked``: the source ids of each hit, best first."""
    out = {}
    for k in ks:
        sources = [s for hit in ranked[:k] for s in hit]
        value = evidence_recall(evidence, sources)
        out[k] = 0.0 if value is None else value
    return out


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


def _load_config(config: Mapping[str, Any] | str | None) -> dict[str, Any]:
    if config is None:
        return {}
    if isinstance(config, str | os.PathLike):
        return load_config_file(config)
    return dict(config)


def _selected_questions(
    conv: Conversation, categories: Iterable[int]
) -> tuple[list[Question], int]:
    wanted = set(categories)
    chosen = [q for q in conv.questions if q.category in wanted]
    answerable = [q for q in chosen if q.evidence]
    return answerable, len(chosen) - len(answerable)


def evaluate_locomo(
    options: LocomoOptions, *, progress: Progress | None = None, host: Any = None
) -> dict[str, Any]:
    """Run the evaluation and return the report (also written to ``options.out`` if set).

    ``host`` is the plugin host to build backends with (default: every installed plugin).
    """
    from ..memory import LightMemory
    from ..plugins import PluginHost

    if options.k < 1:
        raise InputError(f"--k: expected a positive integer, got {options.k}")
    progress = progress or Progress()
    conversations = load_conversations(options.data, samples=options.samples)
    if not conversations or conversations[0].format != "locomo":
        found = conversations[0].format if conversations else "nothing"
        raise InputError(f"{options.data}: expected a LoCoMo file, found {found}")
    raw_config = _load_config(options.config)
    ks = sorted({k for k in (1, 5, options.k) if k <= options.k})
    host = host or PluginHost()
    totals = {
        name: SystemScores() for name in (PIPELINE, *(BASELINES if options.baselines else ()))
    }
    samples: list[dict[str, Any]] = []
    qa_reports: list[dict[str, Any]] = []
    qa_meta: dict[str, Any] | None = None
    per_question: list[dict[str, Any]] = []
    usage_total: dict[str, Any] | None = None
    meta_models: dict[str, Any] = {}
    config_hash = ""
    started = time.perf_counter()

    def build_report() -> dict[str, Any]:
        """The report over the samples done so far, written to ``options.out`` if set."""
        report = {
            "benchmark": "locomo",
            "metadata": _metadata(options, config_hash, meta_models, time.perf_counter() - started),
            "k": options.k,
            "categories": list(options.categories),
            "planned": [c.sample_id for c in conversations],
            "done": [sample["sample_id"] for sample in samples],
            "systems": {name: s.summary(options.k) for name, s in totals.items()},
            "usage": usage_total,
            "samples": samples,
            "questions": per_question,
        }
        return finish_report(report, options, qa_reports, qa_meta)

    with ExitStack() as stack:
        if options.memory_dir is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="lightmem-eval-")))
        else:
            root = Path(options.memory_dir)
            root.mkdir(parents=True, exist_ok=True)
        for n, conv in enumerate(conversations, start=1):
            tag = f"[{n}/{len(conversations)} {conv.sample_id}]"
            questions, skipped = _selected_questions(conv, options.categories)
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
                scores = {name: SystemScores() for name in totals}
                if not config_hash:
                    config_hash = hash_config(memory.config)
                    meta_models = _models(memory)
                embedder = memory.embedder
                memory.warm_up()  # load the model outside the timings
                turns = conv.messages
                done = 0
                pipe = scores[PIPELINE]
                for session in () if reused else conv.sessions:
                    t0 = time.perf_counter()
                    memory.add_memory(
                        list(session.messages), force_segment=True, force_extract=True
                    )
                    pipe.ingest_s += time.perf_counter() - t0
                    done += len(session.messages)
                    rate = done / pipe.ingest_s if pipe.ingest_s else 0.0
                    progress.update(f"{tag} ingesting {done}/{len(turns)} turns ({rate:.0f}/s)")
                pipe.turns = 0 if reused else len(turns)  # no throughput for a reused store
                if not reused and llm is not None and memory.config.update == "offline":
                    progress.update(f"{tag} offline update", force=True)
                    memory.construct_update_queue_all_entries()
                    memory.offline_update_all_entries()
                if not reused:
                    write_stamp(store_dir, stamp)
                usage = memory.get_token_statistics()
                usage_total = _add_usage(usage_total, usage)

                baselines = None
                if options.baselines:
                    progress.update(f"{tag} indexing raw turns for the baselines", force=True)
                    bm25_dir = root / f"{conv.sample_id}-bm25"
                    if reused:  # the baselines' index of the earlier run: built again
                        shutil.rmtree(bm25_dir, ignore_errors=True)
                    bm25 = build_bm25(memory.resolved, str(bm25_dir))
                    raw_embedder: Any = embedder
                    if raw_embedder is None:
                        raw_embedder = _default_embedder(host, str(root))
                    baselines = TurnBaselines(raw_embedder, bm25, memory.config.hybrid_weights)
                    baselines.ingest(turns)
                    for name in BASELINES:
                        scores[name].turns = len(turns)
                    # dense and fusion need the vectors, BM25 its index; fusion needs both
                    scores["dense-turns"].ingest_s = baselines.timings.embed_s
                    scores["bm25-turns"].ingest_s = baselines.timings.bm25_index_s
                    scores["fusion-turns"].ingest_s = (
                        baselines.timings.embed_s + baselines.timings.bm25_index_s
                    )

                words_of = {m["id"]: word_count(str(m["content"])) for m in turns}
                chain = memory.backends.retrievers()
                no_graph = [r.label for r in chain if r.kind != "graph_memory"]
                if no_graph and len(no_graph) < len(chain):
                    scores[WITHOUT_GRAPH] = SystemScores(turns=pipe.turns, ingest_s=pipe.ingest_s)
                    totals.setdefault(WITHOUT_GRAPH, SystemScores())
                # With a graph, the same memory is also searched without it (None: the chain).
                chains: dict[str, list[str] | None] = {PIPELINE: None}
                if WITHOUT_GRAPH in scores:
                    chains[WITHOUT_GRAPH] = no_graph
                for i, q in enumerate(questions, start=1):
                    # The embedder remembers the vectors of recent texts: the search that runs
                    # first would pay the query embedding and the other would not. Embed the
                    # question first, timed, and give that time to both. The search right after
                    # the embedding also waits longest on a busy machine (the scheduler makes
                    # the process pay for the encoder's burst on every core): the two searches
                    # take turns at going first.
                    embed_ms = 0.0
                    if len(chains) > 1 and embedder is not None:
                        t0 = time.perf_counter()
                        embedder.embed([q.question])
                        embed_ms = (time.perf_counter() - t0) * 1000
                    searched: dict[str, tuple[list[Any], float]] = {}
                    for name in list(chains) if i % 2 else list(chains)[::-1]:
                        t0 = time.perf_counter()
                        got = memory.search(q.question, limit=options.k, retrievers=chains[name])
                        searched[name] = (got, (time.perf_counter() - t0) * 1000 + embed_ms)
                    record: dict[str, Any] = {
                        "id": q.id,
                        "category": q.category,
                        "evidence": list(q.evidence),
                    }
                    if len(chains) > 1:
                        record["query_embed_ms"] = round(embed_ms, 3)
                    for name, (hits, ms) in searched.items():
                        ranked = [tuple(h.entry.source_message_ids) for h in hits if h.entry]
                        words = sum(word_count(h.entry.memory) for h in hits if h.entry)
                        recalls = _recalls_at(ks, q.evidence, ranked)
                        scores[name].add(q.category, recalls, words, ms)
                        record[name] = _question_record(recalls[options.k], ranked)
                    if baselines is not None:
                        for name, (ids, seconds) in baselines.search(q.question, options.k).items():
                            ranked_ids = [(x,) for x in ids]
                            recalls = _recalls_at(ks, q.evidence, ranked_ids)
                            words = sum(words_of.get(x, 0) for x in ids)
                            scores[name].add(q.category, recalls, words, seconds * 1000)
                            record[name] = _question_record(recalls[options.k], ranked_ids)
                    per_question.append(record)
                    progress.update(f"{tag} question {i}/{len(questions)}")
                if baselines is not None:
                    baselines.close()
                qa = None
                if options.qa:
                    from .qa import evaluate_qa, run_metadata

                    def qa_progress(text: str, tag: str = tag) -> None:
                        progress.update(f"{tag} QA {text}")

                    qa = evaluate_qa(
                        memory, llm, questions, k=options.k, metadata=False, progress=qa_progress
                    )
                    qa_reports.append(qa)
                    qa_meta = qa_meta or run_metadata(memory, llm, k=options.k)
            finally:
                memory.close()
            sample = {
                "sample_id": conv.sample_id,
                "sessions": len(conv.sessions),
                "turns": len(conv.messages),
                "questions": len(questions),
                "questions_without_evidence": skipped,
                "dropped_evidence": list(conv.dropped_evidence),
                "usage": usage,
                "systems": {name: s.summary(options.k) for name, s in scores.items()},
            }
            if qa is not None:
                sample["qa"] = qa
            samples.append(sample)
            for name, s in scores.items():
                totals[name].merge(s)
            pipe_summary = scores[PIPELINE].summary(options.k)
            progress.line(
                f"{tag} {len(conv.messages)} turns, {len(questions)} questions: "
                f"recall@{options.k} {pipe_summary[f'recall@{options.k}']:.3f}, "
                f"{pipe_summary['ingest_turns_per_s'] or 0:.0f} turns/s"
            )
            if options.out and n < len(conversations):
                build_report()  # the samples done so far survive an interrupted run

    return build_report()


def _question_record(recall: float, ranked: Sequence[Sequence[str]]) -> dict[str, Any]:
    return {"recall": recall, "sources": [list(s) for s in ranked]}


def _default_embedder(host: Any, memory_dir: str) -> Any:
    from lightmem_hookspecs import BackendContext

    from ..config import resolve_backend

    registration, options = resolve_backend(
        host, "$.text_embedder", "text_embedder", BackendSpec("huggingface")
    )
    return registration.factory(options, BackendContext(memory_dir=memory_dir))


def _add_usage(total: dict[str, Any] | None, usage: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = (
        json.loads(json.dumps(total)) if total else {"total": {}, "by_operation": {}}
    )
    for key, value in usage["total"].items():
        out["total"][key] = out["total"].get(key, 0) + value
    for op, counters in usage["by_operation"].items():
        slot = out["by_operation"].setdefault(op, {})
        for key, value in counters.items():
            slot[key] = slot.get(key, 0) + value
    return out


# ---------------------------------------------------------------------------------------------
# Metadata
# ---------------------------------------------------------------------------------------------


def _models(memory: Any) -> dict[str, Any]:
    stats = memory.stats()
    models: dict[str, Any] = {
        "backends": stats["backends"],
        "chains": stats["chains"],
        "config": config_dict(memory.config),
    }
    if memory.embedder is not None:
        models["text_embedder_model"] = memory.embedder.model_name
    if memory.llm is not None:
        models["memory_manager_model"] = memory.llm.model_name
    return models


def _file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _metadata(
    options: LocomoOptions, config_hash: str, models: Mapping[str, Any], seconds: float
) -> dict[str, Any]:
    from .. import __version__

    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "lightmem_version": __version__,
        "git": git_commit(),
        "data": str(options.data),
        "data_sha256": _file_sha256(options.data),
        "samples": list(options.samples) if options.samples else None,
        "config_hash": config_hash,
        **models,
        "python": platform.python_version(),
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
        "seconds": round(seconds, 1),
    }


def finish_report(
    report: dict[str, Any], options: Any, qa_reports: Sequence[Any], qa_meta: Any
) -> dict[str, Any]:
    """A harness's report with its answer accuracy (``--qa``), written to ``options.out``
    as JSON when given; returned as it is written."""
    if options.qa:
        from .qa import merge_qa

        report["qa"] = {**merge_qa(qa_reports), "metadata": qa_meta}
    if options.out:
        out = Path(options.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        # Whole or not at all: a run stopped while writing keeps the report written before.
        part = out.with_name(out.name + ".part")
        part.write_text(json.dumps(_json_safe(report), indent=1), encoding="utf-8")
        os.replace(part, out)
    return report


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


# ---------------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------------


def format_report(report: Mapping[str, Any]) -> str:
    """The comparison table printed at the end of a run."""
    k = report["k"]
    cats = [str(c) for c in report["categories"]]
    systems = report["systems"]
    questions = next(iter(systems.values()))["questions"] if systems else 0
    header = (
        f"LoCoMo evidence recall@{k}: {len(report['samples'])} conversation(s), "
        f"{questions} questions (categories {', '.join(cats)})"
    )
    cols = [f"cat{c}" for c in cats] + [f"R@{k}", "words", "turns/s", "p50 ms", "p95 ms"]
    width = max([14, *(len(name) + 1 for name in systems)])
    lines = [header, f"{'system':<{width}}" + "".join(f"{c:>9}" for c in cols)]
    for name, s in systems.items():
        cells = [_cell(s["by_category"].get(c, {}).get("recall"), ".3f") for c in cats]
        cells += [_cell(s[f"recall@{k}"], ".3f"), _cell(s["context_words"], ".0f")]
        cells += [_cell(s["ingest_turns_per_s"], ".0f")]
        cells += [_cell(s["search_ms_p50"], ".1f"), _cell(s["search_ms_p95"], ".1f")]
        lines.append(f"{name:<{width}}" + "".join(cells))
    usage = report.get("usage") or {}
    if (usage.get("total") or {}).get("llm_calls"):
        for op, label in (("extract", "ingestion"), ("update", "update")):
            u = usage["by_operation"].get(op) or {}
            lines.append(
                f"LLM {label}: {u.get('llm_calls', 0)} calls, {u.get('prompt_tokens', 0)} "
                f"prompt + {u.get('completion_tokens', 0)} completion tokens"
            )
    if report.get("qa"):
        from .qa import format_qa

        lines.append(format_qa(report["qa"]))
    lines.append(_run_line(report["metadata"]))
    return "\n".join(lines)


def _run_line(meta: Mapping[str, Any]) -> str:
    """The report's last line: configuration, embedder, commit and duration of the run."""
    git = meta.get("git") or {}
    return (
        f"config {meta['config_hash']}, embedder {meta.get('text_embedder_model', '-')}, "
        f"commit {str(git.get('commit', '-'))[:10]}{' (dirty)' if git.get('dirty') else ''}, "
        f"{meta['seconds']} s"
    )


def _cell(value: Any, spec: str) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return f"{'-':>9}"
    return f"{value:>9{spec}}"


# ---------------------------------------------------------------------------------------------
# CLI entry
# ---------------------------------------------------------------------------------------------


def options_from_args(args: Any) -> LocomoOptions:
    samples = None
    if getattr(args, "samples", None):
        samples = tuple(s.strip() for s in args.samples.split(",") if s.strip())
    categories: tuple[int, ...] = DEFAULT_CATEGORIES
    if getattr(args, "categories", None):
        try:
            categories = tuple(int(c) for c in args.categories.split(",") if c.strip())
        except ValueError:
            raise InputError(
                f"--categories: expected comma-separated integers, got {args.categories!r}"
            ) from None
    return LocomoOptions(
        data=args.data,
        samples=samples,
        k=args.k,
        config=getattr(args, "config", None),
        out=getattr(args, "out", None),
        memory_dir=getattr(args, "memory_dir", None),
        categories=categories,
        baselines=not getattr(args, "no_baselines", False),
        qa=bool(getattr(args, "qa", False)),
        reuse=bool(getattr(args, "reuse", False)),
    )


def run_locomo(args: Any) -> int:
    """``lightmem eval locomo``: run, print the table on stdout, write the JSON report."""
    options = options_from_args(args)
    progress = Progress(enabled=not getattr(args, "quiet", False))
    report = evaluate_locomo(options, progress=progress)
    print(format_report(report))
    if getattr(args, "plot", None):
        from .plots import plot_report

        for path in plot_report(report, args.plot):
            print(f"plot written to {path}", file=sys.stderr)
    if options.out:
        print(f"report written to {options.out}", file=sys.stderr)
    return 0
