"""LLM calls and tokens of ingestion with ``graph_mem: true`` against the same without it.

Ingests LoCoMo conversations (one ``add_memory`` per session) through the loopback
OpenAI-compatible server twice on the same scripted model: once without graph memory, once with
the ``networkx`` graph. The scripted model writes one fact per message and, when the request's
schema asks for relations, one relation per capitalised name in the message. Tokens are counted
as OpenAI bills them (cl100k: 3 + sum of 3 + content tokens per request, plus the JSON schema);
completion tokens are the answer's cl100k tokens. Target: the same number of LLM calls.
Compared at the openai backend's default ``max_tokens`` (2000: this model's one-fact-per-message
answers are cut and batches split, without graph memory too) and at 16000 (nothing is cut).

    python benchmarks/graph_llm_cost.py --data /work/shared/data/locomo/locomo-dev.json \
        --samples conv-30

Writes ``benchmarks/results/graph_llm_cost.json``.
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
_NAME = re.compile(r"\b[A-Z][a-z]{2,}\b")


def with_relations(responder: Any) -> Any:
    def answer(body: dict[str, Any]) -> str:
        from lightmem_core.eval.economy import _schema

        text = responder(body)
        schema = _schema(body)
        facts_schema = schema.get("properties", {}).get("facts", {}).get("items", {})
        if "relations" not in facts_schema.get("properties", {}):
            return text
        value = json.loads(text)
        for fact in value.get("facts", []):
            speaker, _, said = fact["text"].partition(": ")
            fact["relations"] = [
                {"subject": speaker, "relation": "mentions", "object": name, "single": False}
                for name in dict.fromkeys(_NAME.findall(said))
                if name != speaker
            ][:3]
        return json.dumps(value)

    return answer


def run(conv: Any, graph: bool, root: Path, max_tokens: int) -> dict[str, Any]:
    import lightmem_networkx.plugin as networkx_plugin
    import lightmem_openai.plugin as openai_plugin

    import lightmem_core.builtin as builtin
    from lightmem_core.eval.economy import Billed, ScriptedResponder, lightmem_economy
    from lightmem_core.testing import fresh_host
    from lightmem_core.testing.openai_server import OpenAICompatibleServer
    from lightmem_core.testing.reference import ReferencePlugin, reference_config

    host = fresh_host(builtin, ReferencePlugin(), networkx_plugin, openai_plugin)
    with OpenAICompatibleServer() as server:
        server.responder = Billed(with_relations(ScriptedResponder()))
        config = reference_config(
            root,
            memory_manager={
                "model_name": "openai",
                "configs": {
                    "api_key": "sk-bench",
                    "openai_base_url": server.base_url,
                    "max_tokens": max_tokens,
                },
            },
            update=None,
        )
        if graph:
            config |= {"graph_mem": True, "graph_memory": {"model_name": "networkx"}}
        usage, memory = lightmem_economy(
            conv, config, memory_dir=root / "mem", host=host, server=server, update=False
        )
        relations = memory.backends.graphs()[0].count() if graph else 0
        memory.close()
    return {**usage, "graph_relations": relations}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--samples", default=None, help="comma-separated sample ids")
    parser.add_argument(
        "--max-tokens",
        default="2000,16000",
        help="the LLM backend's max_tokens values to compare at (comma-separated)",
    )
    args = parser.parse_args()
    from lightmem_core.datasets import load_conversations

    samples = args.samples.split(",") if args.samples else None
    report: dict[str, Any] = {}
    for conv in load_conversations(args.data, samples=samples):
        for limit in (int(x) for x in args.max_tokens.split(",")):
            with tempfile.TemporaryDirectory() as tmp:
                report[f"{conv.sample_id} max_tokens={limit}"] = {
                    "without_graph": run(conv, False, Path(tmp) / "plain", limit),
                    "with_graph": run(conv, True, Path(tmp) / "graph", limit),
                }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "graph_llm_cost.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
