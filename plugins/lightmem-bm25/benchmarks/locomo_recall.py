"""Evidence recall of the BM25 context retriever over raw LoCoMo turns, per tokenizer setting.

Each conversation's turns are indexed (one record per turn, speaker in the payload); each
question of categories 1-4 is a query; recall@k is the share of a question's evidence turns
found in the top k, averaged over questions. Prints a table and writes
``benchmarks/results/bm25_locomo_recall.json``.

    python plugins/lightmem-bm25/benchmarks/locomo_recall.py --data /path/to/locomo10.json

The LoCoMo data (CC BY-NC 4.0) is not part of this repository; point ``--data`` at a copy.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from lightmem_bm25.index import BM25Retriever
from lightmem_hookspecs import IndexRecord
from lightmem_textkit.analysis import Analyzer

SETTINGS: dict[str, dict] = {
    "plain (no stopwords, no stemming)": {"stopwords": False, "stem": False},
    "stopwords": {"stopwords": True, "stem": False},
    "stemming": {"stopwords": False, "stem": True},
    "stopwords + stemming": {"stopwords": True, "stem": True},
    "stopwords + stemming, plus": {"stopwords": True, "stem": True, "variant": "plus"},
    "stopwords + stemming, l": {"stopwords": True, "stem": True, "variant": "l"},
}


def load_conversations(path: Path) -> list[tuple[list[dict], list[dict]]]:
    samples = json.loads(path.read_text(encoding="utf-8"))
    out = []
    for sample in samples:
        conv = sample["conversation"]
        turns = [
            turn
            for key, session in conv.items()
            if key.startswith("session_") and isinstance(session, list)
            for turn in session
        ]
        questions = [q for q in sample["qa"] if q.get("category") in (1, 2, 3, 4)]
        out.append((turns, questions))
    return out


def evaluate(conversations, ks: tuple[int, ...], **settings) -> dict[str, float]:
    variant = settings.pop("variant", "okapi")
    analyzer = Analyzer(**settings)
    totals = dict.fromkeys(ks, 0.0)
    n_questions = 0
    for turns, questions in conversations:
        index = BM25Retriever(analyzer=analyzer, variant=variant)
        index.index(
            [
                IndexRecord(t["dia_id"], t["text"], {"speaker": t["speaker"]})
                for t in turns
                if t.get("text")
            ]
        )
        for q in questions:
            evidence = {e for e in q.get("evidence", []) if e}
            if not evidence:
                continue
            hits = [i for i, _ in index.search(q["question"], limit=max(ks))]
            for k in ks:
                totals[k] += len(evidence & set(hits[:k])) / len(evidence)
            n_questions += 1
    return {f"recall@{k}": totals[k] / max(n_questions, 1) for k in ks} | {"questions": n_questions}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, type=Path, help="a LoCoMo JSON file")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    conversations = load_conversations(args.data)
    ks = (1, 5, 10)
    results = {}
    for name, settings in SETTINGS.items():
        start = time.perf_counter()
        row = evaluate(conversations, ks, **dict(settings))
        row["seconds"] = round(time.perf_counter() - start, 3)
        results[name] = row
        print(
            f"{name:36s} "
            + "  ".join(f"{key}={value:.3f}" for key, value in row.items() if "recall" in key)
            + f"  ({row['questions']} questions, {row['seconds']:.2f} s)"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / "bm25_locomo_recall.json"
    target.write_text(json.dumps({"data": str(args.data), "results": results}, indent=2))
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
