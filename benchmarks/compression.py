"""Pre-compression throughput and topic-segmentation accuracy on LoCoMo turns (lightmem-llmlingua,
lightmem-entropy).

No real LLMLingua-2 or GPT-2 weights exist here, so the models are random ones built on the spot
with the shapes that matter for speed: ``tiny`` (hidden 32, 4 layers: what the tests use) and
``base`` (BERT-base / GPT-2-small shape: hidden 768, 12 layers, 12 heads; vocabulary trained on
the data). Compression speed depends on shape, not on the weights; which words survive does not
mean anything with random weights.

Compression (``--rate`` of tokens kept) is timed four ways per model size:
- ``batched, session``: lightmem-llmlingua's batched engine, one ``compress`` call per LoCoMo
  session (what ``add_memory`` does with a session's messages);
- ``batched, single``: the same engine, one call per turn (streaming ingestion);
- ``llmlingua stock``: ``llmlingua.PromptCompressor.compress_prompt`` per turn, as the original
  LightMem does (it pads every chunk to 512 tokens);
- ``entropy_compress``: lightmem-entropy on a random GPT-2 of the same size class.
Tokens are counted with tiktoken's ``cl100k_base`` (the offline copy), per input turn.

Segmentation: each conversation's sessions are concatenated; the true boundaries are the session
starts; a predicted boundary within ``--tolerance`` turns of a true one counts (precision), a true
boundary with a prediction within ``--tolerance`` turns is found (recall). Segmenters: the core's
``embedding`` segmenter, and lightmem-llmlingua's ``llmlingua-2`` segmenter (attention only,
``confirm`` and ``score``) on the tiny random encoder, with all-MiniLM-L6-v2 embeddings (from
lightmem-huggingface) when installed, else the reference hashing embedder. A random encoder's
attention carries no topic signal, so its numbers are a chance-level floor, reported as such.
``chance`` is the precision of boundaries placed uniformly at random.

    python benchmarks/compression.py --data /path/to/locomo10.json

Writes ``benchmarks/results/compression.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SIZES = {
    "tiny": {"hidden_size": 32, "num_layers": 4, "num_heads": 2, "intermediate_size": 64},
    "base": {"hidden_size": 768, "num_layers": 12, "num_heads": 12, "intermediate_size": 3072},
}


def load_sessions(path: str, conversations: int | None) -> list[list[list[str]]]:
    from lightmem_core.datasets import load_conversations

    out = []
    for conv in load_conversations(path)[:conversations]:
        out.append([[m["content"] for m in s.messages] for s in conv.sessions])
    return out


def cl100k() -> Any:
    from lightmem_llmlingua.offline import ensure_cl100k_base

    ensure_cl100k_base()
    import tiktoken

    return tiktoken.get_encoding("cl100k_base")


def build_models(folder: Path, size: str, corpus: list[str]) -> tuple[str, str]:
    from lightmem_core.testing.tiny_models import (
        build_tiny_bert_token_classifier,
        build_tiny_gpt2,
    )

    shape = SIZES[size]
    vocab = 600 if size == "tiny" else 8000
    bert = build_tiny_bert_token_classifier(
        folder / f"llmlingua-2-bert-base-multilingual-cased-{size}",
        corpus=corpus,
        vocab_size=vocab,
        **shape,
    )
    gpt2 = build_tiny_gpt2(
        folder / f"gpt2-{size}",
        corpus=corpus,
        vocab_size=vocab,
        hidden_size=shape["hidden_size"],
        num_layers=shape["num_layers"],
        num_heads=shape["num_heads"],
        intermediate_size=shape["intermediate_size"],
        n_positions=1024,
    )
    return str(bert), str(gpt2)


def llmlingua_compressor(model: str, rate: float, engine: str) -> Any:
    from lightmem_hookspecs import BackendContext
    from lightmem_llmlingua.options import CompressConfig, LLMLingua2Options, LLMLinguaConfig
    from lightmem_llmlingua.plugin import build_compressor

    options = LLMLingua2Options(
        llmlingua_config=LLMLinguaConfig(model_name=model),
        compress_config=CompressConfig(rate=rate),
        engine=engine,  # type: ignore[arg-type]
    )
    return build_compressor(options, BackendContext(memory_dir="unused"))


def entropy_compressor(model: str, rate: float) -> Any:
    from lightmem_entropy.options import EntropyConfig, EntropyOptions
    from lightmem_entropy.plugin import build_compressor
    from lightmem_hookspecs import BackendContext

    options = EntropyOptions(EntropyConfig(model_name=model, compress_rate=rate))
    return build_compressor(options, BackendContext(memory_dir="unused"))


def time_compression(
    compressor: Any, batches: list[list[str]], encoding: Any, label: str
) -> dict[str, Any]:
    compressor.compress(batches[0][:2])  # load the model and warm up
    turns = [t for b in batches for t in b]
    tokens_in = sum(len(encoding.encode(t)) for t in turns)
    started = time.perf_counter()
    outputs = [o for b in batches for o in compressor.compress(b)]
    seconds = time.perf_counter() - started
    tokens_out = sum(len(encoding.encode(t)) for t in outputs)
    result = {
        "label": label,
        "turns": len(turns),
        "calls": len(batches),
        "seconds": round(seconds, 3),
        "tokens_in": tokens_in,
        "tokens_out": tokens_out,
        "kept_share": round(tokens_out / tokens_in, 3),
        "tokens_per_s": round(tokens_in / seconds, 1),
        "ms_per_turn": round(1000 * seconds / len(turns), 2),
    }
    print(
        f"  {label:<34} {result['turns']:>5} turns {result['tokens_per_s']:>10.0f} tok/s "
        f"{result['ms_per_turn']:>8.2f} ms/turn  kept {result['kept_share']:.2f}",
        flush=True,
    )
    return result


def compression(args: argparse.Namespace, sessions: list[list[list[str]]]) -> dict[str, Any]:
    encoding = cl100k()
    flat_sessions = [s for conv in sessions for s in conv if s]
    corpus = [t for s in flat_sessions for t in s]
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            print(f"compression, {size} models:", flush=True)
            bert, gpt2 = build_models(Path(tmp), size, corpus)
            limit = args.turns if size == "tiny" else args.base_turns
            stock_limit = args.stock_turns if size == "tiny" else args.base_stock_turns
            by_session = take_turns(flat_sessions, limit)
            single = [[t] for s in by_session for t in s]
            stock = [[t] for s in take_turns(flat_sessions, stock_limit) for t in s]
            batched = llmlingua_compressor(bert, args.rate, "batched")
            rows = [
                time_compression(batched, by_session, encoding, "llmlingua-2 batched, session"),
                time_compression(batched, single, encoding, "llmlingua-2 batched, single"),
                time_compression(batched, stock, encoding, "llmlingua-2 batched, same turns"),
                time_compression(
                    llmlingua_compressor(bert, args.rate, "llmlingua"),
                    stock,
                    encoding,
                    "llmlingua stock compress_prompt",
                ),
                time_compression(
                    entropy_compressor(gpt2, args.rate), by_session, encoding, "entropy_compress"
                ),
            ]
            same, stocked = rows[2], rows[3]
            results[size] = {
                "shape": SIZES[size],
                "rows": rows,
                "speedup_vs_stock": round(stocked["seconds"] / same["seconds"], 1),
            }
            print(f"  batched vs stock on the same turns: {results[size]['speedup_vs_stock']}x")
    return results


def take_turns(sessions: list[list[str]], limit: int) -> list[list[str]]:
    out, used = [], 0
    for session in sessions:
        if used >= limit:
            break
        out.append(session[: limit - used])
        used += len(out[-1])
    return out


# -- segmentation ---------------------------------------------------------------------------


def score(predicted: list[int], truth: list[int], tolerance: int) -> tuple[int, int]:
    matched_predictions = sum(any(abs(p - t) <= tolerance for t in truth) for p in predicted)
    found = sum(any(abs(p - t) <= tolerance for p in predicted) for t in truth)
    return matched_predictions, found


def embedder_for_segmentation() -> tuple[Any, str]:
    try:
        from lightmem_hookspecs import BackendContext
        from lightmem_huggingface.plugin import HuggingFaceOptions, build_embedder

        embedder = build_embedder(HuggingFaceOptions(), BackendContext(memory_dir="unused"))
        return embedder, "all-MiniLM-L6-v2"
    except ImportError:
        from lightmem_core.testing.reference import HashEmbedder

        return HashEmbedder(256), "reference-hash-256"


def segmentation(args: argparse.Namespace, sessions: list[list[list[str]]]) -> dict[str, Any]:
    import numpy as np
    from lightmem_hookspecs import BackendContext, Message
    from lightmem_llmlingua.options import SegmenterOptions
    from lightmem_llmlingua.plugin import build_segmenter

    from lightmem_core.builtin import EmbeddingSegmenter, EmbeddingSegmenterOptions
    from lightmem_core.testing.tiny_models import build_tiny_bert_token_classifier

    embedder, embedder_name = embedder_for_segmentation()
    cache: dict[str, Any] = {}

    class CachedEmbedder:
        model_name, dimension = embedder_name, 0

        def embed(self, texts: list[str]) -> Any:
            missing = [t for t in dict.fromkeys(texts) if t not in cache]
            if missing:
                for t, v in zip(missing, np.asarray(embedder.embed(missing)), strict=True):
                    cache[t] = v
            return np.stack([cache[t] for t in texts])

    cached = CachedEmbedder()
    corpus = [t for conv in sessions for s in conv for t in s]
    print(f"segmentation ({embedder_name} embeddings, tolerance {args.tolerance}):", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        model = str(build_tiny_bert_token_classifier(Path(tmp) / "encoder", corpus=corpus))
        ctx = BackendContext(memory_dir="unused", get_backend={"text_embedder": cached}.get)
        segmenters = {
            "embedding (core)": EmbeddingSegmenter(EmbeddingSegmenterOptions(), cached),
            "llmlingua-2 attention only": build_segmenter(
                SegmenterOptions(model_name=model, combine="attention"), ctx
            ),
            "llmlingua-2 confirm (default)": build_segmenter(
                SegmenterOptions(model_name=model, combine="confirm"), ctx
            ),
            "llmlingua-2 score": build_segmenter(
                SegmenterOptions(model_name=model, combine="score"), ctx
            ),
        }
        totals = {name: [0, 0, 0, 0.0] for name in segmenters}  # predicted, tp, found, s
        n_truth = 0
        chance = []
        for conv in sessions:
            turns = [t for s in conv for t in s]
            truth, at = [], 0
            for s in conv[:-1]:
                at += len(s)
                truth.append(at)
            n_truth += len(truth)
            buffer = [
                Message(id=str(i), role="user", content=t, original_content=t)
                for i, t in enumerate(turns)
            ]
            cached.embed(turns)
            positions = list(range(1, len(turns)))
            hits = sum(any(abs(p - t) <= args.tolerance for t in truth) for p in positions)
            chance.append(hits / len(positions))
            for name, segmenter in segmenters.items():
                started = time.perf_counter()
                predicted = segmenter.segment(buffer)
                elapsed = time.perf_counter() - started
                matched, found = score(predicted, truth, args.tolerance)
                row = totals[name]
                row[0] += len(predicted)
                row[1] += matched
                row[2] += found
                row[3] += elapsed
    results: dict[str, Any] = {
        "embedder": embedder_name,
        "tolerance": args.tolerance,
        "conversations": len(sessions),
        "true_boundaries": n_truth,
        "chance_precision": round(statistics.mean(chance), 3),
        "segmenters": {},
    }
    for name, (predicted, matched, found, seconds) in totals.items():
        precision = matched / predicted if predicted else 0.0
        recall = found / n_truth if n_truth else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        results["segmenters"][name] = {
            "predicted": predicted,
            "precision": round(precision, 3),
            "recall": round(recall, 3),
            "f1": round(f1, 3),
            "seconds": round(seconds, 2),
        }
        print(
            f"  {name:<32} predicted {predicted:>4}  P {precision:.3f}  R {recall:.3f}  "
            f"F1 {f1:.3f}  ({seconds:.1f} s)",
            flush=True,
        )
    print(f"  chance precision (uniform placement): {results['chance_precision']:.3f}")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="a LoCoMo file (e.g. locomo10.json)")
    parser.add_argument("--out", default="benchmarks/results/compression.json")
    parser.add_argument("--rate", type=float, default=0.6, help="share of tokens kept")
    parser.add_argument("--sizes", default="tiny,base", help="model sizes: tiny, base")
    parser.add_argument("--turns", type=int, default=1000, help="turns timed, tiny models")
    parser.add_argument("--stock-turns", type=int, default=300, help="turns for stock, tiny")
    parser.add_argument("--base-turns", type=int, default=200, help="turns timed, base size")
    parser.add_argument("--base-stock-turns", type=int, default=40, help="stock turns, base")
    parser.add_argument("--conversations", type=int, default=None, help="limit conversations")
    parser.add_argument("--tolerance", type=int, default=2, help="boundary tolerance (turns)")
    parser.add_argument("--skip", default="", help="comma list: compression, segmentation")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1 is fastest on a busy CPU)"
    )
    args = parser.parse_args()
    args.sizes = [s for s in args.sizes.split(",") if s]
    skip = set(args.skip.split(","))
    import torch

    torch.set_num_threads(args.threads)
    sessions = load_sessions(args.data, args.conversations)
    result: dict[str, Any] = {
        "data": Path(args.data).name,
        "rate": args.rate,
        "machine": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
            "torch": torch.__version__,
        },
    }
    if "compression" not in skip:
        result["compression"] = compression(args, sessions)
    if "segmentation" not in skip:
        result["segmentation"] = segmentation(args, sessions)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
