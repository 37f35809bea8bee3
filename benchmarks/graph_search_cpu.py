"""What the graph retriever adds to a whole ``search()`` on one LoCoMo conversation, in wall time
and in the calling thread's CPU time.

Ingests one conversation (``--sample``, default conv-43: 680 turns) into a memory with the
embedded default plus ``graph_mem`` and the ``networkx`` graph (or reopens ``--memory-dir`` if
it already holds one), then asks every question of categories 1-4 with the whole chain and
with the chain minus the graph (``search(..., retrievers=[...])``), in alternating rounds of
one process. The CPU time of the calling thread leaves out the time a busy machine keeps the
process waiting, so it can be compared across loads where wall time cannot; the query
embedding's own torch threads are not in it (the same for both).

    python benchmarks/graph_search_cpu.py --data /work/shared/data/locomo/locomo-dev.json

Writes ``benchmarks/results/graph_search_cpu.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from lightmem_core.datasets import load_conversations
from lightmem_core.memory import LightMemory

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="a LoCoMo-format JSON file")
    parser.add_argument("--sample", default="conv-43")
    parser.add_argument("--memory-dir", help="reuse (or fill) this memory directory")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()

    conv = load_conversations(args.data, samples=[args.sample])[0]
    folder = args.memory_dir or tempfile.mkdtemp(prefix="graph-cpu-")
    fresh = not any(Path(folder).glob("*")) if Path(folder).exists() else True
    config = {"memory_dir": folder, "graph_mem": True, "graph_memory": {"model_name": "networkx"}}
    memory = LightMemory(config)
    memory.warm_up()
    if fresh:
        for session in conv.sessions:
            memory.add_memory(list(session.messages), force_segment=True, force_extract=True)
    questions = [q.question for q in conv.questions if q.category in (1, 2, 3, 4)]
    chain = memory.backends.retrievers()
    without = [r.label for r in chain if r.kind != "graph_memory"]
    for q in questions[:20]:  # the graph backend builds its adjacency lazily
        memory.search(q, limit=10)
    rounds: dict[str, list[dict[str, float]]] = {"graph": [], "without_graph": []}
    for n in range(args.rounds):
        order = [("graph", None), ("without_graph", without)]
        for name, labels in order if n % 2 == 0 else order[::-1]:
            cpu, wall = [], []
            for q in questions:
                c, w = time.thread_time(), time.perf_counter()
                memory.search(q, limit=10, retrievers=labels)
                cpu.append((time.thread_time() - c) * 1000)
                wall.append((time.perf_counter() - w) * 1000)
            rounds[name].append(
                {"cpu_p50_ms": statistics.median(cpu), "wall_p50_ms": statistics.median(wall)}
            )
    entries = len(memory.get_all())
    memory.close()
    result = {
        "sample": args.sample,
        "entries": entries,
        "questions": len(questions),
        "rounds": rounds,
        "cpu_p50_ms": {k: statistics.median(r["cpu_p50_ms"] for r in v) for k, v in rounds.items()},
        "wall_p50_ms": {
            k: statistics.median(r["wall_p50_ms"] for r in v) for k, v in rounds.items()
        },
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "graph_search_cpu.json").write_text(json.dumps(result, indent=1))
    print(
        f"{args.sample}: {entries} entries, {len(questions)} questions; search p50 over "
        f"{args.rounds} rounds (median of rounds)"
    )
    for name in rounds:
        print(
            f"  {name:<14} cpu {result['cpu_p50_ms'][name]:6.2f} ms   "
            f"wall {result['wall_p50_ms'][name]:7.2f} ms"
        )
    added = result["cpu_p50_ms"]["graph"] - result["cpu_p50_ms"]["without_graph"]
    print(f"  graph adds {added:.2f} ms of CPU time at p50")


if __name__ == "__main__":
    main()
