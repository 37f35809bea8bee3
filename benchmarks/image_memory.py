"""Image memory costs: ingest throughput of images, and search latency with and without them.

    nice python benchmarks/image_memory.py --images 100 --entries 1000 --queries 50

A tiny random CLIP (``lightmem_core.testing.tiny_models.build_tiny_clip``, built here: no hub
access) is the ``huggingface`` multimodal embedder, on the CPU. Measured, in one run:

1. ingest: ``--images`` messages, each a caption and a 32x32 PNG as a ``data:`` URI, added in
   one ``add`` call (checked, stored once by hash, embedded, indexed): images per second;
2. search: a memory of ``--entries`` text entries and ``--entries`` image entries (no LLM, the
   sqlite-bm25 lexical index), opened twice (a copy of its folder: one owner per memory) — the
   retrieval chain with the ``multimodal`` retriever and without it — and searched
   ``--queries`` times each, alternating: p50 and p95.

Quality needs a real CLIP (``clip-ViT-B-32``), which cannot be downloaded here: these numbers
are costs only. Writes benchmarks/results/image_memory.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _timing import percentile

RESULTS = Path(__file__).resolve().parent / "results"
WORDS = [
    "dog",
    "beach",
    "kitchen",
    "garden",
    "mountain",
    "city",
    "river",
    "birthday",
    "concert",
    "train",
    "snow",
    "market",
]


def png(rng: random.Random) -> bytes:
    import io

    from PIL import Image

    image = Image.new("RGB", (32, 32), tuple(rng.randrange(256) for _ in range(3)))
    for _ in range(8):
        x, y = rng.randrange(32), rng.randrange(32)
        image.putpixel((x, y), tuple(rng.randrange(256) for _ in range(3)))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def image_message(rng: random.Random, k: int) -> dict[str, Any]:
    from lightmem_core.testing.reference import data_uri

    caption = f"photo {k}: the {rng.choice(WORDS)} and the {rng.choice(WORDS)}"
    return {
        "role": "user",
        "content": [
            {"type": "text", "text": caption},
            {"type": "image_url", "image_url": {"url": data_uri(png(rng))}},
        ],
    }


def config(where: Path, clip: Path, multimodal: bool) -> dict[str, Any]:
    chain = [{"kind": "context_retriever", "model_name": "sqlite-bm25"}]
    if multimodal:
        chain.append(
            {"kind": "context_retriever", "model_name": "multimodal", "name": "multimodal"}
        )
    return {
        "memory_dir": str(where),
        "text_embedder": None,
        "multimodal_embedder": {"model_name": "huggingface", "configs": {"model": str(clip)}},
        "retrieval": {"retrievers": chain},
        "background_retry": False,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--entries", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--out", default=str(RESULTS / "image_memory.json"))
    args = parser.parse_args(argv)

    from lightmem_core import LightMemory
    from lightmem_core.testing.tiny_models import build_tiny_clip

    rng = random.Random(0)
    report: dict[str, Any] = {"benchmark": "image_memory", "model": "tiny random CLIP, CPU"}
    with tempfile.TemporaryDirectory(prefix="lightmem-images-") as tmp:
        clip = build_tiny_clip(Path(tmp) / "clip")
        # 1. ingest throughput
        with LightMemory(config(Path(tmp) / "ingest", clip, True)) as mem:
            mem.add([image_message(rng, -1)])  # load the model outside the timing
            messages = [image_message(rng, k) for k in range(args.images)]
            started = time.perf_counter()
            mem.add(messages)
            seconds = time.perf_counter() - started
            stored = sum(e.category == "image" for e in mem.get_all())
        report["ingest"] = {
            "images": args.images,
            "seconds": round(seconds, 3),
            "images_per_second": round(args.images / seconds, 1),
            "image_entries": stored,
        }
        print(f"ingest: {args.images} images in {seconds:.2f} s", file=sys.stderr, flush=True)
        # 2. search latency, 1k text + 1k image entries, with and without the multimodal retriever
        where = Path(tmp) / "search"
        with LightMemory(config(where, clip, True)) as mem:
            texts = [
                {"role": "user", "content": f"note {k}: {rng.choice(WORDS)} {rng.choice(WORDS)}"}
                for k in range(args.entries)
            ]
            for at in range(0, args.entries, 200):
                mem.add(texts[at : at + 200])
                mem.add([image_message(rng, k) for k in range(at, min(at + 200, args.entries))])
            counts = {
                "text": sum(e.category != "image" for e in mem.get_all()),
                "image": sum(e.category == "image" for e in mem.get_all()),
            }
        queries = [
            f"the {rng.choice(WORDS)} near the {rng.choice(WORDS)}" for _ in range(args.queries)
        ]
        copy = Path(tmp) / "search-copy"  # one owner per memory dir: the same data, twice
        shutil.copytree(where, copy)
        memories = {
            "with_multimodal": LightMemory(config(where, clip, True)),
            "without_multimodal": LightMemory(config(copy, clip, False)),
        }
        times: dict[str, list[float]] = {k: [] for k in memories}
        try:
            for mem in memories.values():
                mem.search("warm up", limit=10)
            for query in queries:
                for label, mem in memories.items():
                    started = time.perf_counter()
                    mem.search(query, limit=10)
                    times[label].append(time.perf_counter() - started)
        finally:
            for mem in memories.values():
                mem.close()
        report["search"] = {
            "entries": counts,
            "queries": args.queries,
            **{
                label: {
                    "p50_ms": round(1000 * percentile(values, 0.5), 2),
                    "p95_ms": round(1000 * percentile(values, 0.95), 2),
                }
                for label, values in times.items()
            },
        }
    print(json.dumps(report, indent=1))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1), encoding="utf-8")
    print(f"written to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
