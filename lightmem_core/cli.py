"""The ``lightmem`` command: plugins, config, demo, add, search, stats, retry, reindex, eval."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import InputError, LightMemError

#: ``--quiet``: results and errors only (no progress, timings or notes).
_QUIET = False


def note(text: str) -> None:
    """A remark for the person at the terminal (stderr), silenced by ``--quiet``."""
    if not _QUIET:
        print(text, file=sys.stderr)


def configure_output(*, quiet: bool, verbose: bool) -> None:
    """Third-party progress bars, advisories and warnings only with ``--verbose``.

    Set before any model library is imported: they read these variables at import time.
    """
    global _QUIET
    _QUIET = quiet
    if verbose:
        return
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    import logging
    import warnings

    warnings.filterwarnings("ignore", module=r"(?!lightmem)")  # warnings of other packages
    logging.basicConfig(level=logging.ERROR if quiet else logging.WARNING)


def _output_args(parser: argparse.ArgumentParser, *, top: bool = False) -> None:
    default: Any = False if top else argparse.SUPPRESS  # a subcommand's flag adds to the top's
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=default,
        help="print results and errors only: no progress, timings or notes",
    )
    group.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=default,
        help="also show other libraries' progress bars and warnings (model loading)",
    )


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str, ensure_ascii=False))


def _memory_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--memory-dir",
        default=None,
        help="memory directory (default: the config's memory_dir, else ./lightmem_data)",
    )
    parser.add_argument("--config", default=None, help="configuration file (JSON, TOML or YAML)")
    parser.add_argument("--user-id", default=None, help="scope: user id")


def _remote_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url", default=None, help="act on a memory served by `lightmem serve` at this URL"
    )
    parser.add_argument(
        "--api-key", default=None, help="API key for --url (default: $LIGHTMEM_API_KEY)"
    )


def _raw_config(args: argparse.Namespace) -> dict[str, Any]:
    from .config import load_config_file

    config = load_config_file(args.config) if args.config else {}
    # A short-lived command retries nothing in the background: `lightmem retry` does that.
    config.setdefault("background_retry", False)
    if args.memory_dir is not None:
        config["memory_dir"] = args.memory_dir
    return config


def _resolved(args: argparse.Namespace) -> Any:
    """The command's configuration, resolved once (kept on ``args`` for the rest of it)."""
    resolved = getattr(args, "_resolved", None)
    if resolved is None:
        from .config import resolve
        from .plugins import PluginHost

        resolved = resolve(_raw_config(args), PluginHost(), source=args.config)
        args._resolved = resolved
    return resolved


def _open_memory(args: argparse.Namespace) -> Any:
    if getattr(args, "url", None):
        from .client import RemoteMemory

        return RemoteMemory(args.url, args.api_key)
    from .memory import LightMemory

    return LightMemory(_resolved(args))


def cmd_plugins(args: argparse.Namespace) -> int:
    from .plugins import PluginHost

    host = PluginHost()
    registry = host.registry
    plugins = [p.to_dict() for p in host.plugins.values()]
    if args.json:
        _print_json({"plugins": plugins, "conflicts": registry.conflicts})
    else:
        for p in plugins:
            version = f" {p['version']}" if p["version"] else ""
            contract = f", contract {p['contract']}" if p["contract"] else ""
            print(f"{p['name']}  ({p['distribution'] or '?'}{version}{contract})")
            if p["description"]:
                print(f"    {p['description']}")
            for kind, names in sorted(p["backends"].items()):
                print(f"    {kind}: {', '.join(names)}")
            if p["hooks"]:
                print(f"    hooks: {', '.join(p['hooks'])}")
            for line in p["deprecated"]:
                print(f"    DEPRECATED: {line}")
            if p["error"]:
                print(f"    LOAD ERROR: {p['error']}")
        for conflict in registry.conflicts:
            print(f"CONFLICT: {conflict}")
        if not plugins:
            print("no LightMem plugins installed")
    return 1 if registry.conflicts else 0


def cmd_config_check(args: argparse.Namespace) -> int:
    from .config import load_config_file, resolve
    from .hookchain import HookChain
    from .plugins import PluginHost

    data = load_config_file(args.file)
    resolved = resolve(data, PluginHost(), source=args.file)
    config = resolved.config
    hooks = HookChain(resolved.host, config.hooks, memory_dir=config.memory_dir)
    print(f"{args.file}: OK")
    for backend in resolved.backends:
        print(f"  {backend.path}: {backend.name} (plugin {backend.plugin})")
    print(f"  retrieve_strategy: {config.retrieve_strategy}; memory_dir: {config.memory_dir}")
    chains = resolved.chains(hooks.plugins)
    retrievers = ", ".join(
        f"{r['name']}={r['kind']}:{r['backend']} (weight {r['weight']:g})"
        for r in chains["retrievers"]
    )
    print(f"  retrievers: {retrievers or 'none'}")
    fusion = chains["fusion"]
    k = f" (k {fusion['k']})" if fusion["method"] == "rrf" else ""  # weighted fusion has no k
    print(f"  fusion: {fusion['method']}{k}")
    print(f"  rerankers: {' -> '.join(chains['rerankers']) or 'none'}")
    print(f"  pre_compressors: {' -> '.join(chains['pre_compressors']) or 'none'}")
    print(f"  hooks: {' -> '.join(chains['hooks']) or 'none'}")
    return 0


class Progress:
    """A small progress bar on stderr."""

    def __init__(self, total: int, label: str) -> None:
        self.total, self.label, self.done = max(total, 1), label, 0
        self.tty = sys.stderr.isatty()
        self.shown = not _QUIET

    def step(self, n: int = 1) -> None:
        self.done += n
        width = 30
        filled = int(width * self.done / self.total)
        bar = "#" * filled + "-" * (width - filled)
        end = "\r" if self.tty and self.done < self.total else "\n"
        if self.shown and (self.tty or self.done >= self.total):
            sys.stderr.write(f"{self.label} [{bar}] {self.done}/{self.total}{end}")
            sys.stderr.flush()


def load_demo() -> dict[str, Any]:
    text = (
        resources.files("lightmem_core")
        .joinpath("data/demo_conversation.json")
        .read_text(encoding="utf-8")
    )
    return json.loads(text)


def demo_dir() -> Path:
    """Where ``lightmem demo`` keeps its memory: LightMem's cache folder, not the current one
    (``$XDG_CACHE_HOME/lightmem/demo``, else ``~/.cache/lightmem/demo``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lightmem" / "demo"


def cmd_demo(args: argparse.Namespace) -> int:
    demo = load_demo()
    memory_dir = args.memory_dir or str(demo_dir())
    if Path(memory_dir).exists() and not args.keep:
        import shutil

        shutil.rmtree(memory_dir)
    from .config import load_config_file
    from .memory import LightMemory

    config = load_config_file(args.config) if args.config else {}
    print(f"LightMem demo: memory directory {memory_dir}")
    started = time.perf_counter()
    with LightMemory(config, memory_dir=memory_dir) as mem:
        note(f"backends: {json.dumps(mem.stats()['backends'])}")
        total = sum(len(s["messages"]) for s in demo["sessions"])
        progress = Progress(total, "ingesting")
        t0 = time.perf_counter()
        for session in demo["sessions"]:
            for msg in session["messages"]:
                mem.add_memory(
                    [
                        {
                            **msg,
                            "time_stamp": session["date"],
                            "speaker_name": demo["user"] if msg["role"] == "user" else "assistant",
                        }
                    ],
                    user_id=demo["user"],
                )
                progress.step()
            mem.add_memory([], force_segment=True, force_extract=True, user_id=demo["user"])
        ingest_s = time.perf_counter() - t0
        mem.warm_up()  # a question's time is the search, not the model's loading
        print(
            f"ingested {total} messages in {ingest_s:.2f} s "
            f"({mem.stats()['entries'].get('active', 0)} memories)"
        )
        for question in demo["questions"]:
            t1 = time.perf_counter()
            hits = mem.search(question, limit=args.limit, user_id=demo["user"])
            ms = (time.perf_counter() - t1) * 1000
            print(f"\nQ: {question}   ({ms:.1f} ms)")
            for rank, hit in enumerate(hits, 1):
                e = hit.entry
                if e is None:
                    continue
                signals = " ".join(f"{k}={v:.3f}" for k, v in sorted(hit.scores.items()))
                when = f"{e.time_stamp:%Y-%m-%d}" if e.time_stamp else "-"
                print(f"  {rank}. [{hit.score:.4f}] {e.memory}")
                sources = ", ".join(s[:8] for s in e.source_message_ids)
                print(f"       {signals}; {when}; source {sources}")
    print(f"\ndone in {time.perf_counter() - started:.1f} s")
    return 0


def _check_sessions(file: str, sessions: list[Any], config: Any, user_id: str | None) -> None:
    """Validate every message of every session, as ``add_memory`` does, before any is added:
    a bad message is named (``FILE: session 2: messages[1].role: ...``) and nothing is written."""
    from .messages import normalize_messages
    from .scope import make_scope

    scope = make_scope(user_id)
    for i, session in enumerate(sessions, 1):
        try:
            normalize_messages(
                session,
                scope,
                max_chars=config.max_message_chars,
                truncate=config.truncate_long_messages,
            )
        except InputError as exc:
            where = f"{file}: session {i}" if len(sessions) > 1 else file
            raise InputError(f"{where}: {exc}") from None


def cmd_add(args: argparse.Namespace) -> int:
    from .datasets import load_messages_file

    sessions = [s for s in load_messages_file(args.file, sample=args.sample) if s]
    total = sum(len(s) for s in sessions)
    if not sessions:
        note(f"nothing to add: {args.file} holds no messages")
        return 0
    if args.dry_run:
        from .scope import make_scope

        with _open_memory(args) as mem:
            _check_sessions(args.file, sessions, mem.config, args.user_id)
            plan = mem.plan()
            estimate = None
            for session in sessions:
                estimate = plan.add_memory(
                    session, make_scope(args.user_id), force_segment=True, force_extract=True
                )
        if estimate is None:
            print("nothing to add")
            return 0
        print(
            f"dry run: {estimate.messages_new} of {estimate.messages_received} messages are new; "
            f"{estimate.batches} extraction batch(es): {estimate.llm_calls} LLM call(s)"
            + (
                f" (up to {estimate.llm_calls_max} with the online update)"
                if estimate.llm_calls_max > estimate.llm_calls
                else ""
            )
            + f", {estimate.prompt_tokens} prompt tokens ({estimate.token_counting}); "
            "nothing was written or spent"
        )
        return 0
    if getattr(args, "url", None):
        return _add_remote(args, sessions, total)
    progress = Progress(total, "adding")
    with _open_memory(args) as mem:
        _check_sessions(args.file, sessions, mem.config, args.user_id)
        pending_before = {b.id for b in mem.pending_batches()}
        entries = 0
        for session in sessions:
            result = mem.add_memory(
                session,
                force_segment=True,
                force_extract=True,
                user_id=args.user_id,
                token_budget=args.token_budget,
            )
            entries += len(result.entries_added)
            progress.step(len(session))
        print(f"added {total} messages in {len(sessions)} session(s); {entries} new memories")
        held = mem.stats()["budget"]["held_batches"]
        failed = sum(
            b.state == "failed" for b in mem.pending_batches() if b.id not in pending_before
        )
    if held:
        print(
            f"{held} extraction batch(es) held by the token budget; their messages are "
            "journaled: a later add extracts them within its budget, `lightmem retry` at once"
        )
    if failed > 0:
        print(
            f"error: {failed} extraction batch(es) failed; their messages are journaled and "
            f"stay pending: run `lightmem retry` once the memory manager works again",
            file=sys.stderr,
        )
        return 1
    return 0


def _require_memory(args: argparse.Namespace) -> bool:
    """Whether the memory a read-only command names exists; says so when it does not (and
    creates nothing). Only the configuration's paths are read: a memory that is not there
    is said before any backend is looked for."""
    from .config import parse_config

    resolved = getattr(args, "_resolved", None)
    config = (
        resolved.config
        if resolved is not None
        else parse_config(_raw_config(args), source=args.config)
    )
    if config.db_path.is_file():
        return True
    print(
        f"no memory in {config.memory_dir}: nothing has been added there "
        f"(`lightmem add FILE{' --memory-dir ' + args.memory_dir if args.memory_dir else ''}` "
        "creates one; --memory-dir or --config names another)",
        file=sys.stderr,
    )
    return False


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit].rstrip()} ... [{len(text) - limit:,} more characters; --full shows all]"


def _add_remote(args: argparse.Namespace, sessions: list[Any], total: int) -> int:
    """``lightmem add --url``: each session through the served memory's API."""
    if args.token_budget is not None:
        print("error: --token-budget is not available with --url", file=sys.stderr)
        return 2
    entries = pending = 0
    with _open_memory(args) as mem:
        for session in sessions:
            result = mem.add_memory(session, True, True, user_id=args.user_id)
            entries += len(result.entries_added)
            pending = result.batches_pending
    print(f"added {total} messages in {len(sessions)} session(s); {entries} new memories")
    if pending:
        print(f"{pending} extraction batch(es) pending on the server", file=sys.stderr)
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    if not getattr(args, "url", None) and not _require_memory(args):
        return 1
    with _open_memory(args) as mem:
        if hasattr(mem, "warm_up"):
            mem.warm_up()  # the model loads here: start-up, not query time
        startup_ms = (time.perf_counter() - started) * 1000
        t0 = time.perf_counter()
        hits = mem.search(args.query, limit=args.limit, user_id=args.user_id)
        ms = (time.perf_counter() - t0) * 1000
        if args.json:
            _print_json(
                [
                    {
                        "id": h.id,
                        "score": h.score,
                        "scores": h.scores,
                        "ranks": h.ranks,
                        "paths": getattr(h, "paths", {}),
                        "memory": h.entry.memory if h.entry else None,
                        "time_stamp": h.entry.time_stamp if h.entry else None,
                        "source_message_ids": list(h.entry.source_message_ids) if h.entry else [],
                    }
                    for h in hits
                ]
            )
        else:
            from .memory import format_entry

            for rank, hit in enumerate(hits, 1):
                text = format_entry(hit.entry)
                print(f"{rank}. [{hit.score:.4f}] {text if args.full else _shorten(text, 300)}")
            if not hits:
                print("no memory matches", file=sys.stderr)
            note(f"({len(hits)} hits in {ms:.1f} ms; start-up {startup_ms:.0f} ms)")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    with _open_memory(args) as mem:
        _print_json(mem.stats())
    return 0


def cmd_erase(args: argparse.Namespace) -> int:
    if not (args.user_id or args.agent_id or args.run_id):
        print("error: name the --user-id (or --agent-id, --run-id) to erase", file=sys.stderr)
        return 2
    if not args.yes:
        print("error: erasing cannot be undone; add --yes to go ahead", file=sys.stderr)
        return 2
    with _open_memory(args) as mem:
        receipt = mem.erase(user_id=args.user_id, agent_id=args.agent_id, run_id=args.run_id)
    _print_json(receipt if isinstance(receipt, dict) else receipt.as_dict())
    return 0


def cmd_retry(args: argparse.Namespace) -> int:
    with _open_memory(args) as mem:
        result = mem.retry()
        print(f"extracted {result.batches_extracted} batch(es); {result.batches_pending} pending")
    return 0 if result.batches_pending == 0 else 1


def cmd_reindex(args: argparse.Namespace) -> int:
    with _open_memory(args) as mem:
        n = mem.reindex()
        print(f"reindexed {n} active memories")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .transfer import export_memory

    with _open_memory(args) as mem:
        report = export_memory(mem, args.file)
    print(
        f"exported {report.entries} entries, {report.history} history rows and "
        f"{report.messages} unprocessed messages to {report.path}"
        + ("" if report.vectors else " (no embedder: no vectors)")
    )
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from .transfer import import_memory

    with _open_memory(args) as mem:
        report = import_memory(mem, args.file, skip_bad_lines=args.skip_bad_lines)
    for number, problem in report.skipped_lines:
        print(f"skipped {args.file}:{number}: {problem}", file=sys.stderr)
    how = (
        "re-embedded with this memory's embedder"
        if report.reembedded
        else "vectors as exported"
        if report.vectors
        else "no vectors: this memory has no vector store"
    )
    print(
        f"imported {report.entries_added} entries ({how}), {report.history_added} history rows, "
        f"{report.messages_added} unprocessed messages"
        + (
            f", {report.images_added} images ("
            + ("re-embedded" if report.images_reembedded else "vectors as exported")
            + ")"
            if report.images_added
            else ""
        )
    )
    return 0


def cmd_graph_show(args: argparse.Namespace) -> int:
    if not _require_memory(args):
        return 1
    with _open_memory(args) as mem:
        lines = mem.graph_show(args.entity, args.depth, user_id=args.user_id)
    if not lines:
        print(f"no entity called {args.entity!r} in the graph", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


def cmd_graph_export(args: argparse.Namespace) -> int:
    if not _require_memory(args):
        return 1
    with _open_memory(args) as mem:
        text = mem.graph_export(args.format, user_id=args.user_id)
    if args.output:
        Path(args.output).write_text(text + "\n", encoding="utf-8")
    else:
        print(text)
    return 0


def installed_versions() -> list[tuple[str, str]]:
    """``(distribution, version)`` of every installed LightMem distribution, the core first."""
    from importlib import metadata

    found: dict[str, str] = {}
    for dist in metadata.distributions():
        name = (dist.metadata["Name"] or "").strip()
        if name.lower().replace("_", "-").startswith("lightmem"):
            found.setdefault(name.lower().replace("_", "-"), dist.version)
    return sorted(found.items(), key=lambda item: (item[0] != "lightmem-core", item[0]))


class _Version(argparse.Action):
    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_args: Any, **_kwargs: Any) -> None:
        width = max((len(name) for name, _ in installed_versions()), default=0)
        for name, version in installed_versions():
            print(f"{name:<{width}}  {version}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lightmem", description=__doc__)
    parser.add_argument(
        "--version", action=_Version, help="the version of every installed LightMem distribution"
    )
    _output_args(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("plugins", help="list installed plugins and the backends they register")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_plugins)

    p = sub.add_parser("config", help="configuration tools")
    config_sub = p.add_subparsers(dest="config_command", required=True)
    c = config_sub.add_parser("check", help="validate a configuration file")
    c.add_argument("file")
    c.set_defaults(func=cmd_config_check)

    p = sub.add_parser("demo", help="ingest a sample conversation and answer sample questions")
    p.add_argument(
        "--memory-dir", default=None, help="default ~/.cache/lightmem/demo (recreated each run)"
    )
    p.add_argument("--config", default=None)
    p.add_argument("--limit", type=int, default=3)
    p.add_argument("--keep", action="store_true", help="do not clear the memory directory first")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "add", help="add messages from a JSON/JSONL file, a LoCoMo or LongMemEval sample"
    )
    p.add_argument("file")
    p.add_argument("--sample", default=None, help="which sample of a multi-sample file")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="report the LLM calls and prompt tokens this would spend; write and spend nothing",
    )
    p.add_argument(
        "--token-budget",
        type=int,
        default=None,
        metavar="N",
        help="LLM tokens each session's add may spend (default: llm_tokens_per_add); "
        "batches past it stay held in the journal for a later add or `lightmem retry`",
    )
    _memory_args(p)
    _remote_args(p)
    p.set_defaults(func=cmd_add)

    p = sub.add_parser("search", help="search the memory")
    p.add_argument("query")
    p.add_argument("--limit", type=int, default=10)
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--full", action="store_true", help="print long memories whole (default: 300 characters)"
    )
    _memory_args(p)
    _remote_args(p)
    p.set_defaults(func=cmd_search)

    for name, func, text in (
        ("stats", cmd_stats, "counts, usage (LLM calls, tokens, embedder calls), backends"),
        ("retry", cmd_retry, "retry pending or failed extraction batches"),
        (
            "reindex",
            cmd_reindex,
            "rebuild the vector, BM25 and graph indexes from the record store",
        ),
    ):
        p = sub.add_parser(name, help=text)
        _memory_args(p)
        if name == "stats":
            _remote_args(p)
        p.set_defaults(func=func)

    p = sub.add_parser("export", help="write the memory to a versioned JSONL file")
    p.add_argument("file", help="the file to write")
    _memory_args(p)
    p.set_defaults(func=cmd_export)
    p = sub.add_parser(
        "import", help="read a file written by lightmem export into this memory (idempotent)"
    )
    p.add_argument("file", help="a file written by lightmem export")
    p.add_argument(
        "--skip-bad-lines",
        action="store_true",
        help="import the good lines of a damaged file and list the bad ones (default: refuse it)",
    )
    _memory_args(p)
    p.set_defaults(func=cmd_import)

    p = sub.add_parser(
        "erase",
        help="remove every message, memory, history row and index record of a user (or agent, "
        "run), files rewritten",
    )
    _memory_args(p)
    _remote_args(p)
    p.add_argument("--agent-id", default=None, help="scope: agent id")
    p.add_argument("--run-id", default=None, help="scope: run id")
    p.add_argument("--yes", action="store_true", help="confirm: the erase cannot be undone")
    p.set_defaults(func=cmd_erase)

    p = sub.add_parser("graph", help="inspect the graph memory (graph_mem: true)")
    graph_sub = p.add_subparsers(dest="graph_command", required=True)
    g = graph_sub.add_parser("show", help="an entity and its relations, with their validity")
    g.add_argument("entity", help="entity name or alias")
    g.add_argument("--depth", type=int, default=1, help="relations deep (default 1)")
    _memory_args(g)
    g.set_defaults(func=cmd_graph_show)
    g = graph_sub.add_parser("export", help="every entity and relation, as JSON or GraphML")
    g.add_argument("--format", choices=("json", "graphml"), default="json")
    g.add_argument("--output", default=None, help="file to write (default: standard output)")
    _memory_args(g)
    g.set_defaults(func=cmd_graph_export)

    from .service.cli import add_service_parsers

    add_service_parsers(sub)

    try:
        from .eval.cli import add_eval_parser
    except ImportError:
        pass
    else:
        add_eval_parser(sub)
    _output_args_everywhere(parser)
    return parser


def _output_args_everywhere(parser: argparse.ArgumentParser) -> None:
    """``--quiet`` and ``--verbose`` after any command, too (``lightmem search q --quiet``)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command in dict.fromkeys(action.choices.values()):
                nested = any(isinstance(a, argparse._SubParsersAction) for a in command._actions)
                if not nested and "--quiet" not in command._option_string_actions:
                    _output_args(command)
                _output_args_everywhere(command)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_output(quiet=args.quiet, verbose=args.verbose)
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return code
    except BrokenPipeError:
        # The reader left (`lightmem stats | head`): stop quietly, as Unix tools do on SIGPIPE.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + 13
    except LightMemError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
