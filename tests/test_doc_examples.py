"""The plugin-author pages run as they are written, against the tutorial's own plugin.

docs/tutorial/writing-a-plugin.md: its pyproject block is the example plugin's pyproject; its
code blocks are the example plugin's code (same definitions, docstrings and comments aside) and,
run as a module of the example package, register a backend the core builds and runs; the
`lightmem plugins` output it shows is what the command prints; the usage example prints what
the page says; the conformance block passes under pytest. docs/plugins/testing.md: every block
passes under pytest.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import tomllib
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = ROOT / "docs" / "tutorial" / "writing-a-plugin.md"
TESTING = ROOT / "docs" / "plugins" / "testing.md"
EXAMPLE = ROOT / "docs" / "tutorial" / "lightmem-example"

pytest.importorskip("lightmem_example", reason="the tutorial's plugin is not installed")

_FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.M | re.S)


def blocks(page: Path, language: str) -> list[str]:
    return [body for lang, body in _FENCE.findall(page.read_text()) if lang == language]


def plain_blocks(page: Path) -> list[str]:
    return blocks(page, "")


def _is_test(code: str) -> bool:
    return bool(re.search(r"^(class Test|def test_)", code, re.M))


def run_pytest(tmp_path: Path, sources: list[str]) -> subprocess.CompletedProcess[str]:
    for i, code in enumerate(sources):
        (tmp_path / f"test_block_{i}.py").write_text(code)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _definitions(tree: ast.Module) -> dict[str, str]:
    """Top-level functions, classes and constants, without docstrings, as ``ast.dump``."""
    out = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            for sub in ast.walk(node):
                body = getattr(sub, "body", None)
                if (
                    isinstance(body, list)
                    and body
                    and isinstance(body[0], ast.Expr)
                    and isinstance(body[0].value, ast.Constant)
                    and isinstance(body[0].value.value, str)
                ):
                    sub.body = body[1:] or [ast.Pass()]  # type: ignore[attr-defined]
            out[node.name] = ast.dump(node)
        elif isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                out[target.id] = ast.dump(node)
    return out


def _plugin_blocks() -> list[str]:
    """The tutorial's code blocks that are the plugin's own code (not tests, not usage)."""
    return [
        code
        for code in blocks(TUTORIAL, "python")
        if not _is_test(code) and "LightMemory" not in code
    ]


# -- the tutorial -----------------------------------------------------------------------------


def test_the_tutorial_pyproject_is_the_example_plugins():
    (shown,) = blocks(TUTORIAL, "toml")
    shown_project = tomllib.loads(shown)["project"]
    real = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    for key, value in shown_project.items():
        assert real[key] == value, f"[project] {key} differs from the example's pyproject.toml"


def test_the_tutorial_code_is_the_example_plugins_code():
    real: dict[str, str] = {}
    for module in ("plugin.py", "compressor.py"):
        real.update(_definitions(ast.parse((EXAMPLE / "lightmem_example" / module).read_text())))
    shown: dict[str, str] = {}
    for code in _plugin_blocks():
        shown.update(_definitions(ast.parse(code)))
    assert {"DEFAULT_FILLERS", "FillerOptions", "build", "FillerFilter"} <= set(shown)
    for name, dump in shown.items():
        assert name in real, f"the tutorial shows {name}, which the example plugin does not have"
        assert dump == real[name], f"the tutorial's {name} differs from the example plugin's"


def test_the_tutorial_code_registers_a_backend_the_core_builds(tmp_path):
    from lightmem_core import LightMemory
    from lightmem_core.testing import fresh_host
    from lightmem_core.testing.reference import ReferencePlugin, reference_config

    module = types.ModuleType("lightmem_example.tutorial")
    module.__package__ = "lightmem_example"  # so `from .compressor import ...` resolves
    for code in _plugin_blocks():
        if "class FillerFilter" not in code:  # the backend itself comes from the package
            exec(compile(code, str(TUTORIAL), "exec"), module.__dict__)
    host = fresh_host(ReferencePlugin(), module)
    config = reference_config(
        tmp_path,
        pre_compress=True,
        pre_compressor={"model_name": "filler-filter", "configs": {"fillers": ["um", "like"]}},
    )
    with LightMemory(config, host=host) as memory:
        memory.add([{"role": "user", "content": "Um, my dog is, like, called Rex"}])
        assert [e.memory for e in memory.get_all()] == ["my dog is, called Rex"]


def test_the_plugins_command_prints_what_the_tutorial_shows():
    shown = next(b for b in plain_blocks(TUTORIAL) if "filler-filter" in b)
    out = subprocess.run(
        [sys.executable, "-m", "lightmem_core.cli", "plugins"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert shown.strip() in out, f"`lightmem plugins` printed:\n{out}"


@pytest.mark.slow
def test_the_tutorial_usage_example_prints_what_it_says(tmp_path):
    for module in ("lightmem_huggingface", "lightmem_qdrant", "lightmem_sqlite_index"):
        pytest.importorskip(module, reason="the example uses the embedded default")
    (usage,) = [c for c in blocks(TUTORIAL, "python") if "LightMemory" in c]
    expected = next(b for b in plain_blocks(TUTORIAL) if b.startswith("["))
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", usage],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == expected.strip()


def test_the_tutorial_conformance_block_passes(tmp_path):
    tests = [c for c in blocks(TUTORIAL, "python") if _is_test(c)]
    assert tests, "the tutorial has no test block"
    result = run_pytest(tmp_path, tests)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout and "failed" not in result.stdout


# -- the testing page -------------------------------------------------------------------------


def test_every_block_of_the_testing_page_passes(tmp_path):
    sources = blocks(TESTING, "python")
    assert len(sources) >= 3
    assert all(_is_test(code) for code in sources), "a block of testing.md is not a test"
    result = run_pytest(tmp_path, sources)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = result.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary and "error" not in summary, summary


# -- every block of every page ----------------------------------------------------------------
#
# Each fenced block of README.md and docs/ is one of:
#   python   run as a script in an empty folder (offline, no API key in the environment); a
#            block marked `<!-- doc: continue -->` continues the previous python block of its
#            page and runs with it; a block that defines tests runs under pytest; a block that
#            is one signature (the generated references) must name a hook or interface method;
#   bash     each command checked: `lightmem ...` parses with the CLI's own parser, `pip
#            install` names paths of this checkout (through constraints.txt) and no LightMem
#            package from the index, `python SCRIPT` names a script here and flags it defines,
#            `pytest` paths exist;
#   yaml, json  a configuration: its keys are configuration keys and every backend it selects is
#            one an installed plugin registers (or one the marker `illustrative NAME...` names);
#   text, unlabelled  output or a listing, not code.
# Other markers: `needs api-key VAR` (the block runs against the loopback OpenAI-compatible server
# with VAR set, and fails naming VAR without it), `needs server` (it fails without the server it
# names), `needs model NAME` (it runs where the model is, and fails naming it elsewhere),
# `tested-by TEST` (a test of tests/ named TEST checks the block), `output` (not code),
# `file FORMAT` (the content of a file LightMem reads, parsed as it reads it: FILE_FORMATS).

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
_MARKED_FENCE = re.compile(
    r"(?:^<!-- doc: (?P<marker>[^>]*?) -->\n)?^```(?P<lang>[\w-]*)\n(?P<body>.*?)^```$", re.M | re.S
)
_MARKERS = ("continue", "needs", "tested-by", "illustrative", "output", "file")


class Block(types.SimpleNamespace):
    page: Path
    index: int
    line: int
    lang: str
    body: str
    marker: list[str]

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)}#{self.index}(line {self.line})"


def page_blocks(page: Path) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    return [
        Block(
            page=page,
            index=i,
            line=text.count("\n", 0, m.start("lang")) + 1,
            lang=m["lang"],
            body=m["body"],
            marker=(m["marker"] or "").split(),
        )
        for i, m in enumerate(_MARKED_FENCE.finditer(text))
    ]


ALL_BLOCKS = [b for page in PAGES for b in page_blocks(page)]


def _is_signature(code: str) -> bool:
    """One signature as the references print it: not Python itself, a ``def`` header once
    completed."""
    try:
        ast.parse(code)
        return False
    except SyntaxError:
        pass
    header = code.strip()
    try:
        ast.parse((header if header.startswith("def ") else f"def {header}") + ": ...")
    except SyntaxError:
        return False
    return True


def kind_of(block: Block) -> str:
    marker = block.marker[0] if block.marker else None
    if marker in ("tested-by", "output", "needs", "file"):
        return marker
    if block.lang == "python":
        if _is_signature(block.body):
            return "signature"
        return "python-test" if _is_test(block.body) else "python"
    if block.lang == "bash":
        return "bash"
    if block.lang in ("yaml", "json"):
        return "config"
    if block.lang in ("", "text"):
        return "output"
    return "unknown"


def python_programs() -> list[tuple[Block, str]]:
    """Each python block with the continuations that follow it, as one program."""
    programs: list[tuple[Block, str]] = []
    for block in ALL_BLOCKS:
        if kind_of(block) != "python":
            continue
        if block.marker[:1] == ["continue"]:
            first, code = programs[-1]
            assert first.page == block.page, f"{block.name} continues nothing on its page"
            programs[-1] = (first, code + "\n" + block.body)
        else:
            programs.append((block, block.body))
    return programs


def _doc_env(tmp_path: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.endswith("_API_KEY") and not k.endswith("_BASE_URL")
    }
    return {**env, "HF_HUB_OFFLINE": "1", "HOME": str(tmp_path)}


def run_block(code: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=300, env=env
    )


def _api_keys(text: str) -> None:
    from lightmem_core.service.auth import Keys

    Keys.parse(json.loads(text))


def _mcp_client(text: str) -> None:
    """An MCP client's server list: a `lightmem` command must parse, a URL be the `/mcp` path."""
    from lightmem_core.cli import build_parser

    data = json.loads(text)
    servers = data.get("mcpServers") or data.get("servers")
    assert servers, "no mcpServers / servers"
    for server in servers.values():
        if "command" in server:
            assert server["command"] == "lightmem"
            build_parser().parse_args(server["args"])
        else:
            assert server["url"].endswith("/mcp"), server["url"]


#: File formats a `file FORMAT` block is parsed as, the way LightMem (or, for `mcp-client`, an
#: MCP client starting `lightmem`) reads such a file.
FILE_FORMATS = {"api-keys": _api_keys, "mcp-client": _mcp_client}


def test_file_blocks_parse_as_lightmem_reads_them():
    for block in ALL_BLOCKS:
        if kind_of(block) == "file":
            FILE_FORMATS[block.marker[1]](block.body)


def test_every_block_of_every_page_is_collected_and_marked_correctly():
    assert len(PAGES) > 10 and len(ALL_BLOCKS) > 100
    problems = []
    tests_source = "\n".join(p.read_text() for p in (ROOT / "tests").glob("test_*.py"))
    previous_lang: dict[Path, str] = {}
    for block in ALL_BLOCKS:
        kind = kind_of(block)
        if kind == "unknown":
            problems.append(f"{block.name}: a ```{block.lang} block: label it or mark it")
        if block.marker and block.marker[0] not in _MARKERS:
            problems.append(f"{block.name}: unknown marker {block.marker}")
        if block.marker[:1] == ["continue"] and previous_lang.get(block.page) != "python":
            problems.append(f"{block.name}: continues no python block")
        if block.marker[:1] == ["tested-by"]:
            for name in block.marker[1:] or ["?"]:
                if f"def {name}(" not in tests_source:
                    problems.append(f"{block.name}: no test called {name}")
        if block.marker[:1] == ["needs"]:
            if (
                block.marker[1:2] not in (["api-key"], ["server"], ["model"])
                or block.lang != "python"
            ):
                problems.append(
                    f"{block.name}: `needs api-key VAR`, `needs server` or `needs model NAME`"
                )
            else:
                compile(block.body, block.name, "exec")
        if block.marker[:1] == ["file"] and block.marker[1:] not in ([f] for f in FILE_FORMATS):
            problems.append(f"{block.name}: `file FORMAT`, FORMAT one of {sorted(FILE_FORMATS)}")
        if block.lang:
            previous_lang[block.page] = block.lang
    assert not problems, "\n".join(problems)


@pytest.mark.slow
@pytest.mark.parametrize(
    "program", [pytest.param(code, id=b.name) for b, code in python_programs()]
)
def test_python_blocks_run_as_printed(program, tmp_path):
    out = run_block(program, tmp_path, _doc_env(tmp_path))
    assert out.returncode == 0, out.stdout + out.stderr


def test_python_test_blocks_pass(tmp_path):
    sources = [b.body for b in ALL_BLOCKS if kind_of(b) == "python-test"]
    if not sources:
        return
    result = run_pytest(tmp_path, sources)
    assert result.returncode == 0, result.stdout + result.stderr


def test_signature_blocks_name_a_hook_or_an_interface_method():
    import lightmem_hookspecs
    from lightmem_hookspecs import specs

    known = {n for n in dir(specs) if n.startswith("lightmem_")}
    for name in dir(lightmem_hookspecs):
        obj = getattr(lightmem_hookspecs, name)
        if isinstance(obj, type):
            known |= {n for n in vars(obj) if not n.startswith("_")}
    signatures = [b for b in ALL_BLOCKS if kind_of(b) == "signature"]
    assert signatures
    for block in signatures:
        header = block.body.strip()
        header = header if header.startswith("def ") else f"def {header}"
        tree = ast.parse(header + ": ...")
        func = tree.body[0]
        assert isinstance(func, ast.FunctionDef)
        assert func.name in known, f"{block.name}: {func.name} is no hook or interface method"


NEEDS_KEY = [b for b in ALL_BLOCKS if b.marker[:2] == ["needs", "api-key"]]


@pytest.mark.slow
@pytest.mark.parametrize("block", [pytest.param(b, id=b.name) for b in NEEDS_KEY])
def test_blocks_that_need_an_api_key_run_with_one_and_name_it_without(block, tmp_path):
    from lightmem_core.testing.openai_server import OpenAICompatibleServer

    (variable,) = block.marker[2:]
    env = _doc_env(tmp_path)
    without = run_block(block.body, tmp_path, env)
    assert without.returncode != 0 and variable in without.stderr, without.stderr
    with OpenAICompatibleServer() as server:
        server.responder = lambda body: '{"facts": []}'
        env = {**env, variable: "sk-doc-test", "OPENAI_BASE_URL": server.base_url}
        out = run_block(block.body, tmp_path, env)
    assert out.returncode == 0, out.stdout + out.stderr


NEEDS_SERVER = [b for b in ALL_BLOCKS if b.marker[:2] == ["needs", "server"]]


@pytest.mark.slow
@pytest.mark.parametrize("block", [pytest.param(b, id=b.name) for b in NEEDS_SERVER])
def test_blocks_that_need_a_server_fail_without_one_naming_it(block, tmp_path):
    out = run_block(block.body, tmp_path, _doc_env(tmp_path))
    assert out.returncode != 0, "the block ran without its server: it needs none"
    last = out.stderr.strip().splitlines()[-1]
    addresses = re.findall(r"https?://([\w.-]+)|\"host\": \"([\w.-]+)\"", block.body)
    hosts = {h for pair in addresses for h in pair if h}
    assert hosts and any(h in last for h in hosts), last


NEEDS_MODEL = [b for b in ALL_BLOCKS if b.marker[:2] == ["needs", "model"]]


@pytest.mark.slow
@pytest.mark.parametrize("block", [pytest.param(b, id=b.name) for b in NEEDS_MODEL])
def test_blocks_that_need_a_model_run_with_it_or_fail_naming_it(block, tmp_path):
    (model,) = block.marker[2:]
    out = run_block(block.body, tmp_path, _doc_env(tmp_path))
    if out.returncode != 0:  # the model is not on this machine: the error must say which
        assert model in out.stderr.strip().splitlines()[-1], out.stderr


def _commands(script: str) -> list[list[str]]:
    import shlex

    out = []
    for line in script.replace("\\\n", " ").splitlines():
        # A synopsis's optional part, `[--embedder hash|minilm]`, is its options and values.
        line = re.sub(r"(?:(?<=\s)|^)\[([^\]]*)\]", lambda m: m.group(1).replace("|", " "), line)
        lexer = shlex.shlex(line, posix=True, punctuation_chars="&|;>")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        command: list[str] = []
        tokens = list(lexer)
        for token in [*tokens, "&&"]:
            if token in ("&&", "||", ";", "|", ">"):
                if command:
                    out.append(command)
                command = []
                if token == ">":  # the redirection's target is no command
                    command = ["<redirect>"]
            else:
                command.append(token)
    return [c for c in out if c[0] != "<redirect>"]


def _check_pip(argv: list[str]) -> list[str]:
    problems = []
    local = False
    args = iter(argv[2:])
    for arg in args:
        if arg in ("-c", "-r", "--constraint", "--requirement"):
            path = next(args)
            if not (ROOT / path).is_file():
                problems.append(f"{path} is no file of the checkout")
            local = local or arg in ("-r", "--requirement")
            continue
        if arg in ("-e", "--editable"):
            arg = next(args)
        if arg.startswith("-"):
            continue
        name = arg.split("[")[0]
        if "/" in name or name.startswith("."):
            local = True
            if name.rsplit("/", 1)[-1].isupper():  # a placeholder, ./plugins/NAME
                if not (ROOT / name).parent.is_dir():
                    problems.append(f"{name}: no folder {(ROOT / name).parent}")
            elif not (ROOT / name / "pyproject.toml").is_file():
                problems.append(f"{name} is no project of this checkout")
        elif name.lower().startswith("lightmem"):
            problems.append(f"{name} is not on the package index: install its folder")
    if local and "-c" not in argv and "--constraint" not in argv:
        problems.append("a checkout install goes through -c constraints.txt")
    return problems


def _check_command(argv: list[str]) -> list[str]:
    from lightmem_core.cli import build_parser

    program = argv[0]
    if program in ("nice", "time"):  # a wrapper: check the command it runs
        rest = argv[1:]
        while rest and rest[0].startswith("-"):
            rest = rest[2:] if rest[0] == "-n" else rest[1:]
        return _check_command(rest)
    if program in ("python3", "python") and argv[1:3] == ["-m", "venv"]:
        return []
    if program in (".", "source", "echo", "cd"):
        return []
    if program == "pip":
        return _check_pip(argv) if argv[1:2] == ["install"] else []
    if program == "lightmem":
        try:
            build_parser().parse_args(argv[1:])
        except SystemExit:
            return ["the lightmem command does not parse"]
        return []
    if program in ("python", "python3") and argv[1:2] and argv[1].endswith(".py"):
        script = ROOT / argv[1]
        if not script.is_file():
            return [f"{argv[1]} is no file of the checkout"]
        source = script.read_text(encoding="utf-8")
        flags = [a.strip("[").split("=")[0] for a in argv[2:] if a.strip("[").startswith("--")]
        return [f"{argv[1]} has no option {f}" for f in flags if f'"{f}"' not in source]
    if program == "pytest":
        paths = [a for a in argv[1:] if not a.startswith("-")]
        return [f"{p} does not exist" for p in paths if not (ROOT / p).exists()]
    return [f"{program}: a command the checker does not know; mark the block"]


def test_shell_blocks_name_commands_paths_and_options_that_exist():
    problems = []
    for block in ALL_BLOCKS:
        if kind_of(block) != "bash":
            continue
        for argv in _commands(block.body):
            problems += [f"{block.name}: `{' '.join(argv)}`: {p}" for p in _check_command(argv)]
    assert not problems, "\n".join(problems)


def test_install_commands_in_the_text_work_from_a_checkout():
    """`pip install ...` written in a sentence is checked as in a shell block."""
    problems = []
    for page in PAGES:
        text = _MARKED_FENCE.sub("", page.read_text(encoding="utf-8"))
        for command in re.findall(r"`(pip install [^`]+)`", text):
            for argv in _commands(command):
                problems += [
                    f"{page.relative_to(ROOT)}: `{command}`: {p}" for p in _check_pip(argv)
                ]
    assert not problems, "\n".join(problems)


def test_configuration_blocks_use_known_keys_and_installed_backends():
    import yaml

    from lightmem_core.config import parse_config, selected_backends
    from lightmem_core.plugins import PluginHost, normalize_name

    host = PluginHost()
    registry = host.registry
    loaded = {normalize_name(name) for name in host.plugins}
    problems = []
    for block in ALL_BLOCKS:
        if kind_of(block) != "config":
            continue
        illustrative = {normalize_name(n) for n in block.marker[1:]}
        data = yaml.safe_load(block.body)
        try:
            config = parse_config(data)
        except Exception as exc:
            problems.append(f"{block.name}: {exc}")
            continue
        for path, kind, spec in selected_backends(config):
            name = normalize_name(spec.model_name)
            installed = registry.get(kind, name) is not None
            if not installed and name not in illustrative:
                problems.append(f"{block.name}: {path}: no installed {kind} {spec.model_name!r}")
            if installed and name in illustrative:
                problems.append(f"{block.name}: {spec.model_name!r} is installed now: unmark it")
        hooks = config.hooks if isinstance(config.hooks, list) else []
        names = {normalize_name(h.plugin) for h in hooks} - illustrative - loaded
        problems += [f"{block.name}: no hook plugin {n!r} is installed" for n in sorted(names)]
    assert not problems, "\n".join(problems)
