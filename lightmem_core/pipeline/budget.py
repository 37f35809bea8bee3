"""A per-memory LLM token budget: extraction waits, nothing is lost.

With ``llm_tokens_per_hour`` and/or ``llm_tokens_per_day`` set, an extraction batch starts only
if the tokens the memory's LLM calls spent in the last hour (day), plus the batch's own prompt
estimate, stay within the limit. Otherwise the batch is not sent: it stays pending in the
journal, marked as waiting for the budget, with its retry time set to when enough of the
window's spending has aged out; the background retrier (or ``retry()``) extracts it then. A
batch larger than a whole window's budget is sent once the window is empty, so it cannot wait
forever.

Spending is recorded per extracted batch (prompt + answer tokens, online update included) in a
small ledger in the record store's metadata (the last day, by minute); ``stats()["budget"]``
reports the limits, what was spent, the batches waiting and when extraction resumes.
"""

from __future__ import annotations

import datetime as _dt
import json
import time
from typing import Any

WINDOWS = {"hour": 3600, "day": 86400}
LEDGER = "llm_spend"
#: The error text a batch waiting for the budget carries (``stats`` counts these).
WAITING = "waiting for the LLM token budget"


def limits(config: Any) -> dict[str, int]:
    """The configured limits by window name."""
    found = {"hour": config.llm_tokens_per_hour, "day": config.llm_tokens_per_day}
    return {k: int(v) for k, v in found.items() if v}


def _ledger(store: Any, now: float) -> list[list[float]]:
    try:
        rows = json.loads(store.get_meta(LEDGER) or "[]")
    except ValueError:
        rows = []
    return [r for r in rows if isinstance(r, list) and len(r) == 2 and r[0] > now - 86400]


def record(store: Any, tokens: int, now: float | None = None) -> None:
    """Add ``tokens`` spent now to the ledger (merged by minute, older than a day dropped)."""
    if tokens <= 0:
        return
    now = time.time() if now is None else now
    rows = _ledger(store, now)
    minute = float(int(now // 60) * 60)
    if rows and rows[-1][0] == minute:
        rows[-1][1] += tokens
    else:
        rows.append([minute, tokens])
    store.set_meta(LEDGER, json.dumps(rows))


def spent(store: Any, now: float | None = None) -> dict[str, int]:
    """Tokens spent in each window up to now."""
    now = time.time() if now is None else now
    rows = _ledger(store, now)
    return {
        name: int(sum(n for t, n in rows if t > now - seconds)) for name, seconds in WINDOWS.items()
    }


def wait_until(config: Any, store: Any, estimate: int, now: float | None = None) -> float | None:
    """``None`` if a call of about ``estimate`` tokens fits every window now, else the time
    (epoch seconds) from which it does."""
    caps = limits(config)
    if not caps:
        return None
    now = time.time() if now is None else now
    rows = _ledger(store, now)
    resume = now
    for name, cap in caps.items():
        seconds = WINDOWS[name]
        window = sorted((t, n) for t, n in rows if t > now - seconds)
        total = sum(n for _, n in window)
        if total + estimate <= cap or not window:
            continue
        for t, n in window:  # age spending out, oldest first, until the call fits
            total -= n
            if total + estimate <= cap or total <= 0:
                resume = max(resume, t + seconds)
                break
    return None if resume <= now else resume


def iso(epoch: float) -> str:
    """The record store's time stamp for ``epoch``."""
    return _dt.datetime.fromtimestamp(epoch, _dt.UTC).isoformat(timespec="microseconds")


def status(config: Any, store: Any, now: float | None = None) -> dict[str, Any]:
    """Limits, spending per window, batches waiting for the budget and when they resume."""
    now = time.time() if now is None else now
    caps = limits(config)
    waiting = [
        b
        for b in store.pending_batches()
        if str((store.batch_info(b) or {}).get("last_error") or "").startswith(WAITING)
    ]
    resumes = [(store.batch_info(b) or {}).get("next_attempt_at") for b in waiting]
    return {
        "limits": {f"tokens_per_{k}": v for k, v in caps.items()},
        "spent": {f"last_{k}": v for k, v in spent(store, now).items()},
        "waiting_batches": len(waiting),
        "resumes_at": min((r for r in resumes if r), default=None),
        "state": "waiting for the budget" if waiting else ("limited" if caps else "unlimited"),
    }
