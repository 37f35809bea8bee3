"""Charts of an evaluation report (``lightmem eval ... --plot DIR``), drawn with matplotlib.

Three PNGs per run, from the report's own per-question records:

- ``recall_at_k.png``: recall@k for k = 1 .. K, one panel per question category (LoCoMo) or
  type (LongMemEval, turn recall), one line per system;
- ``context_vs_recall.png``: words of retrieved context against recall@K, one point per system
  (a system up and to the left finds more with less text);
- ``latency.png``: the distribution of search latency per system.

matplotlib is an optional dependency (``pip install lightmem[plot]``), imported here only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .metrics import mean

FILES = ("recall_at_k.png", "context_vs_recall.png", "latency.png")


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise ConfigError(
            "--plot needs matplotlib; install it with: pip install 'lightmem[plot]' "
            "(or pip install matplotlib)"
        ) from None
    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def _recall(evidence: set[str], ranked: Sequence[Sequence[str]], k: int) -> float:
    found = {s for hit in ranked[:k] for s in hit}
    return len(evidence & found) / len(evidence)


def recall_curves(report: Mapping[str, Any]) -> dict[str, dict[str, list[float]]]:
    """``{category: {system: [recall@1, ..., recall@K]}}`` from the per-question records
    (systems ranked by position only; LongMemEval's equal-context cuts are left out)."""
    k = int(report["k"])
    per: dict[str, dict[str, list[list[float]]]] = {}
    if report["benchmark"] == "locomo":
        for q in report["questions"]:
            evidence = set(q["evidence"])
            for name in report["systems"]:
                if name not in q or not evidence:
                    continue
                ranked = q[name]["sources"]
                row = [_recall(evidence, ranked, n) for n in range(1, k + 1)]
                for cat in (str(q["category"]), "all"):
                    per.setdefault(cat, {}).setdefault(name, []).append(row)
    else:
        for q in report["per_question"]:
            evidence = set(q.get("evidence_turns") or ())
            if not evidence or q.get("abstention"):
                continue
            for name in report["systems"]:
                if name not in q or name.endswith("@words"):
                    continue
                got = q[name]
                ranked = got.get("sources") or [(x,) for x in got.get("ids", ())]
                row = [_recall(evidence, ranked, n) for n in range(1, k + 1)]
                for cat in (str(q["type"]), "all"):
                    per.setdefault(cat, {}).setdefault(name, []).append(row)
    return {
        cat: {
            name: [mean(col) for col in zip(*rows, strict=True)] for name, rows in systems.items()
        }
        for cat, systems in per.items()
    }


def _main_recall(report: Mapping[str, Any], system: Mapping[str, Any]) -> float:
    k = report["k"]
    if report["benchmark"] == "locomo":
        return float(system[f"recall@{k}"])
    return float(system[f"turn@{k}"])


def plot_report(report: Mapping[str, Any], directory: str | Path) -> list[Path]:
    """Write the charts of ``report`` (a LoCoMo or LongMemEval report) into ``directory``."""
    plt = _pyplot()
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    bench = "LoCoMo" if report["benchmark"] == "locomo" else "LongMemEval"
    k = int(report["k"])
    written = []

    curves = recall_curves(report)
    cats = sorted((c for c in curves if c != "all"), key=str) + (["all"] if "all" in curves else [])
    cols = min(3, max(1, len(cats)))
    rows = max(1, math.ceil(len(cats) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    xs = list(range(1, k + 1))
    for ax, cat in zip(axes.flat, cats, strict=False):
        for name, ys in curves[cat].items():
            ax.plot(xs, ys, marker="o", markersize=3, label=name)
        title = f"category {cat}" if bench == "LoCoMo" and cat != "all" else cat
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("k")
        ax.set_ylabel("recall@k")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(cats) :]:
        ax.axis("off")
    if cats:
        axes.flat[0].legend(fontsize=7)
    fig.suptitle(f"{bench}: evidence recall@k per category and system")
    fig.tight_layout()
    path = out / FILES[0]
    fig.savefig(path, dpi=100)
    plt.close(fig)
    written.append(path)

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for name, system in report["systems"].items():
        x, y = system.get("context_words"), _main_recall(report, system)
        if x is None or x != x or y != y:
            continue
        ax.scatter([x], [y], s=40)
        ax.annotate(name, (x, y), fontsize=7, xytext=(4, 3), textcoords="offset points")
    ax.set_xlabel("words of retrieved context per question")
    ax.set_ylabel(f"recall@{k}")
    ax.set_title(f"{bench}: context against recall")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = out / FILES[1]
    fig.savefig(path, dpi=100)
    plt.close(fig)
    written.append(path)

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for name, system in report["systems"].items():
        values = [v for v in system.get("search_ms") or () if v is not None]
        if name.endswith("@words") or not values:
            continue
        positive = [max(v, 1e-3) for v in values]
        lo, hi = min(positive), max(positive)
        bins = [lo * (hi / lo) ** (i / 30) for i in range(31)] if hi > lo else 10
        ax.hist(
            positive,
            bins=bins,
            histtype="step",
            label=f"{name} (p50 {system['search_ms_p50']:.1f})",
        )
    ax.set_xscale("log")
    ax.set_xlabel("search latency, ms (log scale)")
    ax.set_ylabel("questions")
    ax.set_title(f"{bench}: search latency")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = out / FILES[2]
    fig.savefig(path, dpi=100)
    plt.close(fig)
    written.append(path)
    return written
