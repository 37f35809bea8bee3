"""Tenants do not wait for each other: 8 tenants each add one batch through the scripted model
on the loopback OpenAI-compatible server, answering each request after ``--delay`` seconds
(1 s). Reports the wall time of one tenant alone and of the 8 at once, same run, and writes
``benchmarks/results/tenant_concurrency.json``. Target: 8 tenants in <= 2.5 s.

    python benchmarks/tenant_concurrency.py [--tenants 8] [--delay 1.0] [--llm-concurrency 8]

``--llm-concurrency 0`` leaves the configuration key out (for a version without it).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any


def run(tenants: int, delay: float, llm_concurrency: int, root: Path, server: Any) -> float:
    from lightmem_core import LightMemory
    from lightmem_core.plugins import PluginHost
    from lightmem_core.testing.reference import ReferencePlugin, reference_config

    host = PluginHost()
    host.register(ReferencePlugin())
    config = reference_config(
        root,
        memory_manager={
            "model_name": "openai",
            "configs": {
                "model": "gpt-4o-mini",
                "api_key": "sk-bench",
                "openai_base_url": server.base_url,
            },
        },
        background_retry=False,
        # 0: leave the key out (to time a version of the code that does not have it)
        **({"llm_concurrency": llm_concurrency} if llm_concurrency else {}),
    )
    with LightMemory(config, host=host) as mem:
        # One add before timing: the LLM client, its HTTP connection pool and the prompts
        # are built on first use.
        mem.add([{"role": "user", "content": "warming up"}], user_id="warm-up")

        def add(t: int) -> None:
            mem.add(
                [
                    {"role": "user", "content": f"I am tenant {t} and I like sailing"},
                    {"role": "assistant", "content": "Noted, sailing it is."},
                ],
                user_id=f"tenant{t}",
            )

        threads = [threading.Thread(target=add, args=(t,)) for t in range(tenants)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
        for t in range(tenants):
            assert mem.get_all(user_id=f"tenant{t}"), f"tenant{t} stored nothing"
    return wall


def main() -> None:
    from lightmem_core.eval.economy import ScriptedResponder
    from lightmem_core.testing.openai_server import OpenAICompatibleServer

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tenants", type=int, default=8)
    parser.add_argument("--delay", type=float, default=1.0)
    parser.add_argument("--llm-concurrency", type=int, default=8)
    parser.add_argument("--out", default="benchmarks/results/tenant_concurrency.json")
    args = parser.parse_args()

    scripted = ScriptedResponder()

    def slow(body: Any) -> str:
        time.sleep(args.delay)
        return scripted(body)

    server = OpenAICompatibleServer(responder=slow)
    server.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            alone = run(1, args.delay, args.llm_concurrency, Path(tmp) / "one", server)
            together = run(
                args.tenants, args.delay, args.llm_concurrency, Path(tmp) / "many", server
            )
    finally:
        server.stop()
    report = {
        "tenants": args.tenants,
        "model_delay_s": args.delay,
        "llm_concurrency": args.llm_concurrency,
        "one_tenant_wall_s": round(alone, 3),
        "all_tenants_wall_s": round(together, 3),
        "target_s": 2.5,
    }
    print(json.dumps(report, indent=2))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
