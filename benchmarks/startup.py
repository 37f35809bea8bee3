"""Start-up cost: `import lightmem_core` plus discovery of every installed plugin.

Target: under 0.2 s, and no heavy library (torch, transformers, ...) imported.
Runs each measurement in a fresh interpreter; prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

PROBE = """
import json, time
t0 = time.perf_counter()
import lightmem_core
from lightmem_core.plugins import PluginHost, heavy_modules_loaded
host = PluginHost()
registry = host.registry
elapsed = time.perf_counter() - t0
print(json.dumps({"seconds": elapsed, "plugins": len(host.plugins),
                  "backends": len(registry.all()), "heavy": heavy_modules_loaded()}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--out", default="benchmarks/results/startup.json")
    args = parser.parse_args()
    runs = []
    for _ in range(args.runs):
        out = subprocess.run(
            [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True
        )
        runs.append(json.loads(out.stdout))
    seconds = [r["seconds"] for r in runs]
    result = {
        "median_s": statistics.median(seconds),
        "max_s": max(seconds),
        "plugins": runs[0]["plugins"],
        "backends": runs[0]["backends"],
        "heavy_modules": runs[0]["heavy"],
        "target_s": 0.2,
    }
    print(
        f"import + discovery: median {result['median_s'] * 1000:.1f} ms, "
        f"max {result['max_s'] * 1000:.1f} ms over {args.runs} runs; "
        f"{result['plugins']} plugins, {result['backends']} backends; "
        f"heavy modules loaded: {result['heavy_modules'] or 'none'}"
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
