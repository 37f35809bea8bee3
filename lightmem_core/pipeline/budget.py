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

A budget per call: with ``llm_tokens_per_add`` (or ``add_memory(..., token_budget=N)``) one
``add_memory`` call joins the messages of its scope held back earlier to its own batch (one
call for both, oldest messages first) and extracts them while what the call spent plus the
batch's prompt estimate stays within N. A batch that does not fit is split at a message: the
part that fits is extracted, the rest is *held*: it stays in the journal with the retry time
state ``held``, which no background retry takes up. The next ``add_memory`` of its scope with
budget left (``flush()`` too) takes it up, or ``retry()``, which extracts everything pending
(within the hour/day limits). A call always extracts at least one message, so a message larger
than the budget cannot block its memory. A background retry of a failed batch is held to the
configured ``llm_tokens_per_add`` as well.
"""

from __future__ import annotations

import datetime as _dt
import json
import time
from typing import Any

import attrs
from lightmem_hookspecs import BatchState

WINDOWS = {"hour": 3600, "day": 86400}
LEDGER = "llm_spend"
#: The error text a batch waiting for the budget carries.
WAITING = "waiting for the LLM token budget"


#: The error text a held batch carries.
HELD_ERROR = (
    WAITING + " of one add_memory call: the next add_memory of its scope with budget left, "
    "or retry(), extracts it"
)


@attrs.define
class CallBudget:
    """What one call may still spend: ``cap`` tokens, ``spent`` so far."""

    cap: int
    spent: int = 0

    @property
    def left(self) -> int:
        return self.cap - self.spent


def call_budget(config: Any, token_budget: int | None) -> CallBudget | None:
    """The budget of one call: ``token_budget`` if given, else ``llm_tokens_per_add``."""
    cap = token_budget if token_budget is not None else config.llm_tokens_per_add
    return CallBudget(int(cap)) if cap else None


def check_token_budget(value: Any) -> int | None:
    """``add_memory``'s ``token_budget``: ``None`` or a positive int, else a typed error."""
    from ..errors import ConfigError

    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(
            f"token_budget must be a positive number of LLM tokens (or None), got {value!r}"
        )
    return value


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


def instant(epoch: float) -> _dt.datetime:
    """``epoch`` as an aware UTC datetime (a batch's retry time)."""
    return _dt.datetime.fromtimestamp(epoch, _dt.UTC)


def iso(epoch: float) -> str:
    """``epoch`` as an ISO 8601 UTC time stamp."""
    return instant(epoch).isoformat(timespec="microseconds")


def status(config: Any, store: Any, now: float | None = None) -> dict[str, Any]:
    """Limits, spending per window, batches waiting for the budget and when they resume."""
    now = time.time() if now is None else now
    caps = limits(config)
    waiting = store.batches([BatchState.HELD, BatchState.WAITING_FOR_BUDGET])
    held = [b for b in waiting if b.state is BatchState.HELD]
    resumes = [b.retry_at for b in waiting if b.state is not BatchState.HELD and b.retry_at]
    limited = {f"tokens_per_{k}": v for k, v in caps.items()}
    if config.llm_tokens_per_add:
        limited["tokens_per_add"] = int(config.llm_tokens_per_add)
    return {
        "limits": limited,
        "spent": {f"last_{k}": v for k, v in spent(store, now).items()},
        "waiting_batches": len(waiting),
        "held_batches": len(held),
        "resumes_at": min(resumes).isoformat(timespec="microseconds") if resumes else None,
        "state": "waiting for the budget" if waiting else ("limited" if limited else "unlimited"),
    }
