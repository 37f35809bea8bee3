"""Search latency while an ingestion runs: waiting on a slow LLM, or running its models.

``--mode llm`` (default; target: p95 <= 100 ms): a memory on the embedded default (MiniLM,
Qdrant, the default lexical index) plus an ``openai`` memory manager pointed at the project's
loopback OpenAI-compatible server. The memory is first filled with ``--prefill`` LoCoMo-like
facts (fast answers); then every answer takes ``--delay`` seconds, a writer thread adds
``--batches`` flushed batches, and the main thread searches without pause until the writer is
done.

``--mode models`` (target: p95 <= 2x the idle p95): the embedded default with LLMLingua-2
pre-compression and LLMLingua-2 topic segmentation (one shared model, no LLM). The model is an
LLMLingua-2-shaped BERT token classifier built at run time with random weights
(``lightmem_core.testing.tiny_models``; ``--model-size``), so nothing is downloaded; its
inference costs what a model of that shape costs. A writer thread adds ``--batches`` sessions of
``--turns`` turns, each compressed and segmented, while the main thread searches.

Both print p50/p95/max of the searches during ingestion and the same with no ingestion running
(the baseline, same run), and write ``benchmarks/results/search_during_ingest[_models].json``.

    python benchmarks/search_during_ingest.py --delay 5 --batches 3
    python benchmarks/search_during_ingest.py --mode models --batches 6 --turns 24
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _timing import percentile

TOPICS = ("dog", "Porto", "lessons", "running", "coffee", "garden", "concert", "brother")


def summary(values: list[float]) -> dict[str, float]:
    return {
        "searches": len(values),
        "p50_ms": round(statistics.median(values), 2),
        "p95_ms": round(percentile(values, 0.95), 2),
        "max_ms": round(max(values), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay", type=float, default=5.0, help="seconds per LLM answer")
    parser.add_argument("--batches", type=int, default=3, help="slow batches to ingest")
    parser.add_argument("--prefill", type=int, default=200, help="facts stored beforehand")
    parser.add_argument("--out", help="JSON report (default: benchmarks/results/...)")
    parser.add_argument("--mode", choices=("llm", "models"), default="llm")
    parser.add_argument("--turns", type=int, default=24, help="turns per session (models)")
    parser.add_argument(
        "--model-size",
        choices=tuple(MODEL_SIZES),
        default="small",
        help="shape of the LLMLingua-2 model built at run time (models)",
    )
    args = parser.parse_args()
    if args.mode == "models":
        models_mode(args)
        return
    args.out = args.out or "benchmarks/results/search_during_ingest.json"

    from lightmem_core import LightMemory
    from lightmem_core.eval.economy import scripted_responder
    from lightmem_core.testing.openai_server import OpenAICompatibleServer

    slow = threading.Event()

    def responder(body: Any) -> str:
        if slow.is_set():
            time.sleep(args.delay)
        return scripted_responder(body)

    with OpenAICompatibleServer() as server, tempfile.TemporaryDirectory() as tmp:
        server.responder = responder
        config = {
            "memory_dir": str(Path(tmp) / "mem"),
            "memory_manager": {
                "model_name": "openai",
                "configs": {"api_key": "sk-bench", "openai_base_url": server.base_url},
            },
            "background_retry": False,
        }
        with LightMemory(config) as mem:
            mem.warm_up()
            facts = [
                {"role": "user", "content": f"Fact {i}: my {TOPICS[i % len(TOPICS)]} story {i}"}
                for i in range(args.prefill)
            ]
            for start in range(0, len(facts), 50):
                mem.add(facts[start : start + 50], user_id="bench")
            queries = [f"what about my {t}?" for t in TOPICS]
            numbers = itertools.count()

            def search_loop(stop: threading.Event | None, count: int = 0) -> list[float]:
                out: list[float] = []
                i = 0
                while (stop is not None and not stop.is_set()) or (stop is None and i < count):
                    t0 = time.perf_counter()
                    # numbered: every query is new (the embedder remembers recent texts)
                    query = f"{queries[i % len(queries)]} ({next(numbers)})"
                    mem.search(query, limit=10, user_id="bench")
                    out.append((time.perf_counter() - t0) * 1000)
                    i += 1
                return out

            idle = search_loop(None, 100)
            slow.set()
            done = threading.Event()

            def writer() -> None:
                try:
                    for b in range(args.batches):
                        mem.add(
                            [{"role": "user", "content": f"New fact {b}: I moved to city {b}"}],
                            user_id="bench",
                        )
                finally:
                    done.set()

            thread = threading.Thread(target=writer)
            started = time.perf_counter()
            thread.start()
            busy = search_loop(done)
            thread.join()
            ingest_s = time.perf_counter() - started
    report = {
        "delay_s": args.delay,
        "batches": args.batches,
        "prefill": args.prefill,
        "ingest_s": round(ingest_s, 2),
        "idle": summary(idle),
        "during_ingestion": summary(busy),
        "target_p95_ms": 100,
    }
    print(f"search while idle:            {report['idle']}")
    print(
        f"search during slow ingestion: {report['during_ingestion']} (ingestion {ingest_s:.1f} s)"
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"written to {out}")


#: Shapes of the LLMLingua-2-style encoder ``--mode models`` builds (``base`` is the shape of
#: the published checkpoint, bert-base-multilingual-cased).
MODEL_SIZES = {
    "tiny": {"hidden_size": 32, "num_layers": 4, "num_heads": 2, "intermediate_size": 64},
    "small": {"hidden_size": 256, "num_layers": 4, "num_heads": 4, "intermediate_size": 1024},
    "base": {"hidden_size": 768, "num_layers": 12, "num_heads": 12, "intermediate_size": 3072},
}

SENTENCES = (
    "I went hiking with my dog near the lake on Saturday and we saw two herons",
    "My sister moved to Lisbon last May and started a new job as a nurse",
    "We adopted a cat named Pixel in 2021 and she sleeps on the keyboard",
    "I am learning the violin and practise scales every evening after dinner",
    "The team finished the quarterly report and the meeting moved to Thursday",
    "For dinner we cooked pasta with fresh basil, garlic, tomatoes and parmesan",
    "The weather in Oslo was cold and rainy so we visited the museum",
    "Caroline said the adoption agency called back about the interview next week",
)


def session_turns(session: int, turns: int) -> list[dict[str, Any]]:
    out = []
    for t in range(turns):
        text = SENTENCES[(session + t) % len(SENTENCES)]
        topic = TOPICS[(session * 3 + t // 6) % len(TOPICS)]
        out.append(
            {
                "role": "user" if t % 2 == 0 else "assistant",
                "content": f"{text}; session {session} turn {t} was about my {topic} again",
                "time_stamp": f"2024-03-{session % 28 + 1:02d}T10:{t % 60:02d}:00",
            }
        )
    return out


def models_mode(args: argparse.Namespace) -> None:
    """Search p95 while ingestion compresses and segments with LLMLingua-2, against idle."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from lightmem_core import LightMemory
    from lightmem_core.testing.tiny_models import CORPUS, build_tiny_bert_token_classifier

    with tempfile.TemporaryDirectory() as tmp:
        corpus = [*CORPUS, *SENTENCES]
        model = build_tiny_bert_token_classifier(
            Path(tmp) / f"llmlingua-2-bert-base-multilingual-cased-{args.model_size}",
            corpus=corpus,
            vocab_size=600 if args.model_size == "tiny" else 4000,
            **MODEL_SIZES[args.model_size],
        )
        config = {
            "memory_dir": str(Path(tmp) / "mem"),
            "background_retry": False,
            "pre_compress": True,
            "pre_compressor": {
                "model_name": "llmlingua-2",
                "configs": {
                    "llmlingua_config": {"model_name": str(model), "device_map": "cpu"},
                    "compress_config": {"rate": 0.6},
                },
            },
            "topic_segment": True,
            "precomp_topic_shared": True,
            "topic_segmenter": {"model_name": "llmlingua-2"},
        }
        with LightMemory(config) as mem:
            mem.warm_up()
            facts = [
                {"role": "user", "content": f"Fact {i}: my {TOPICS[i % len(TOPICS)]} story {i}"}
                for i in range(args.prefill)
            ]
            for start in range(0, len(facts), 50):
                mem.add(facts[start : start + 50], user_id="bench")
            mem.add(session_turns(10_000, args.turns), user_id="warm")  # load the model
            queries = [f"what about my {t}?" for t in TOPICS]
            numbers = itertools.count()

            def search_loop(stop: threading.Event | None, count: int = 0) -> list[float]:
                out: list[float] = []
                i = 0
                while (stop is not None and not stop.is_set()) or (stop is None and i < count):
                    t0 = time.perf_counter()
                    query = f"{queries[i % len(queries)]} ({next(numbers)})"
                    mem.search(query, limit=10, user_id="bench")
                    out.append((time.perf_counter() - t0) * 1000)
                    i += 1
                return out

            idle = search_loop(None, 100)
            done = threading.Event()
            ingest: dict[str, float] = {"compress_segment_s": 0.0}

            def writer() -> None:
                try:
                    for b in range(args.batches):
                        t0 = time.perf_counter()
                        mem.add_memory(
                            session_turns(b, args.turns), force_segment=True, user_id="bench"
                        )
                        ingest["compress_segment_s"] += time.perf_counter() - t0
                finally:
                    done.set()

            thread = threading.Thread(target=writer)
            started = time.perf_counter()
            thread.start()
            busy = search_loop(done)
            thread.join()
            ingest_s = time.perf_counter() - started
            idle_after = search_loop(None, 100)
    idle_p95 = summary(idle)["p95_ms"]
    report = {
        "mode": "models",
        "model_size": args.model_size,
        "model_shape": MODEL_SIZES[args.model_size],
        "sessions": args.batches,
        "turns_per_session": args.turns,
        "prefill": args.prefill,
        "ingest_s": round(ingest_s, 2),
        "idle": summary(idle),
        "idle_after": summary(idle_after),
        "during_ingestion": summary(busy),
        "p95_ratio": round(summary(busy)["p95_ms"] / idle_p95, 2),
        "target_p95_ratio": 2.0,
    }
    print(f"search while idle:             {report['idle']}")
    print(f"search while idle (after):     {report['idle_after']}")
    print(
        f"search during compress+segment: {report['during_ingestion']} "
        f"(ingestion {ingest_s:.1f} s, {args.batches} sessions of {args.turns} turns)"
    )
    print(f"p95 during / idle: {report['p95_ratio']} (target <= 2)")
    out = Path(args.out or "benchmarks/results/search_during_ingest_models.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
