"""Property-based tests of the error contract: whatever messages, search arguments, filters,
scopes and configurations a caller passes, only ``LightMemError`` subclasses escape, a refused
call writes nothing, and what was stored before is intact afterwards.

Examples are bounded (``max_examples``) and the database is off, so the suite runs the same way
in CI in a few tens of seconds.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lightmem_core import LightMemory
from lightmem_core.errors import LightMemError
from lightmem_core.scope import scope_key
from lightmem_core.testing.reference import reference_config

SETTINGS = settings(
    max_examples=120,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# -- strategies -------------------------------------------------------------------------------

surrogates = st.characters(categories=["Cs"])
with_surrogate = st.builds(
    lambda head, lone, tail: head + lone + tail,
    st.text(max_size=5),
    surrogates,
    st.text(max_size=5),
)
nasty_text = st.one_of(
    with_surrogate,
    st.text(max_size=30),
    st.text(alphabet=st.one_of(st.characters(), surrogates), max_size=12),
    st.sampled_from(["", " ", "\x00", "\x1f", '"', "\\", "../../x", "a\x1fb", "🙂" * 3]),
)
numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, nasty_text, st.binary(max_size=4))
json_like = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.one_of(nasty_text, numbers), inner, max_size=3),
    ),
    max_leaves=8,
)


def _deep(n: int) -> dict:
    value: dict = {}
    for _ in range(n):
        value = {"k": value}
    return value


time_stamps = st.one_of(
    st.none(),
    numbers,
    st.datetimes(
        min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31), timezones=st.none()
    ),
    st.datetimes(timezones=st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=-14))])),
    st.sampled_from(
        [
            "0001-01-01T00:00:00+05:00",
            "9999-12-31T23:59:59-05:00",
            "1:56 pm on 40 May, 2023",
            "1:56 pm on 8 May, 2023",
            "2023/05/20 (Sat) 02:21",
            "2023/13/45 (Sat) 99:99",
            "2024-02-30",
            "yesterday",
        ]
    ),
    nasty_text,
)
metadata = st.one_of(json_like, st.just(_deep(200)), st.just(_deep(1000)), st.just([1, 2]))
scope_values = st.one_of(st.none(), st.sampled_from(["alice", "bob", ""]), nasty_text, numbers)
scopes = st.fixed_dictionaries(
    {}, optional={"user_id": scope_values, "agent_id": scope_values, "run_id": scope_values}
)
_VALID_FIELDS = {
    "role": st.sampled_from(["user", "assistant", "system", "tool"]),
    "content": st.sampled_from(["My dog is called Rex", "I live in Porto", "Bees!"]),
    "time_stamp": st.one_of(
        st.none(), st.datetimes(timezones=st.none()), st.just("2023/05/20 (Sat) 02:21")
    ),
    "id": st.one_of(st.sampled_from(["m1", "m2", "7"]), st.integers(0, 9)),
    "metadata": st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
    "speaker_name": st.sampled_from(["Alice", "Bob"]),
}
_HOSTILE_FIELDS = {
    "role": scalars,
    "content": st.one_of(nasty_text, scalars),
    "time_stamp": time_stamps,
    "id": scalars,
    "metadata": metadata,
    "speaker_name": scalars,
    "speaker_id": scalars,
    "extra_key": json_like,
}


@st.composite
def message(draw):
    """A message that is valid except (usually) in one field."""
    bad = draw(st.sampled_from([None, *_HOSTILE_FIELDS]))
    out = {"role": draw(_VALID_FIELDS["role"]), "content": draw(_VALID_FIELDS["content"])}
    for key in ("time_stamp", "id", "metadata", "speaker_name"):
        if draw(st.booleans()):
            out[key] = draw(_VALID_FIELDS[key])
    if bad is not None:
        out[bad] = draw(_HOSTILE_FIELDS[bad])
    return out


messages = st.one_of(st.lists(message(), max_size=4), message(), scalars)

filter_values = st.one_of(
    scalars,
    st.lists(st.one_of(nasty_text, st.integers()), max_size=3),
    st.datetimes(timezones=st.none()),
)
filters = st.one_of(
    st.none(),
    st.dictionaries(
        st.sampled_from(
            [
                "user_id",
                "agent_id",
                "run_id",
                "speaker",
                "topic_id",
                "time_gt",
                "time_gte",
                "time_lt",
                "time_lte",
                "exclude_ids",
                "bogus",
            ]
        ),
        filter_values,
        max_size=4,
    ),
    scalars,
)

# -- helpers ----------------------------------------------------------------------------------


def snapshot(mem: LightMemory) -> tuple[frozenset, frozenset]:
    entries = frozenset(
        (e.id, e.memory, e.status, scope_key(e.scope)) for e in mem.store.entries(status=None)
    )
    journal = frozenset((r.message.id, scope_key(r.message.scope)) for r in mem.store.journal())
    return entries, journal


@pytest.fixture
def mem(tmp_path, ref_host):
    memory = LightMemory(reference_config(tmp_path / "m"), host=ref_host)
    memory.add(
        [{"role": "user", "content": "Alice keeps bees in Lisbon", "id": "seed"}], user_id="alice"
    )
    memory.add(
        [{"role": "user", "content": "Bob keeps goats in Porto", "id": "seed"}], user_id="bob"
    )
    yield memory
    memory.close()


# -- properties -------------------------------------------------------------------------------


def test_add_raises_only_typed_errors_and_keeps_data(mem):
    outcomes: Counter[str] = Counter()

    @SETTINGS
    @given(messages=messages, scope=scopes)
    def check(messages, scope):
        before = snapshot(mem)
        try:
            result = mem.add(messages, **scope)
        except LightMemError:
            outcomes["refused"] += 1
            assert snapshot(mem) == before  # refused before anything was written
            return
        outcomes["accepted"] += 1
        entries, journal = snapshot(mem)
        assert before[0] <= entries and before[1] <= journal  # nothing lost or rewritten
        assert len(journal) - len(before[1]) == result.messages_added

    check()
    assert outcomes["refused"] and outcomes["accepted"], outcomes


def test_search_raises_only_typed_errors_and_never_crosses_scopes(mem):
    outcomes: Counter[str] = Counter()

    valid = {
        "query": st.sampled_from(["bees", "who keeps goats", "Lisbon"]),
        "limit": st.integers(1, 20),
        "filters": st.one_of(
            st.none(),
            st.fixed_dictionaries(
                {},
                optional={
                    "time_gte": st.floats(0, 2e9),
                    "exclude_ids": st.lists(st.text(max_size=5), max_size=2),
                    "user_id": st.sampled_from(["alice", "bob"]),
                },
            ),
        ),
        "scope": st.fixed_dictionaries(
            {}, optional={"user_id": st.sampled_from(["alice", "bob", "carol", "", None])}
        ),
        "strategy": st.one_of(st.none(), st.sampled_from(["embedding", "context", "hybrid"])),
    }
    hostile = {
        "query": st.one_of(nasty_text, scalars),
        "limit": st.one_of(st.integers(-5, 0), st.integers(2**31, 2**65), scalars),
        "filters": filters,
        "scope": scopes,
        "strategy": scalars,
    }

    @st.composite
    def arguments(draw):
        bad = draw(st.sampled_from([None, None, *valid]))
        return {k: draw(hostile[k] if k == bad else valid[k]) for k in valid}

    @SETTINGS
    @given(args=arguments())
    def check(args):
        query, limit, filters, scope, strategy = (
            args[k] for k in ("query", "limit", "filters", "scope", "strategy")
        )
        before = snapshot(mem)
        try:
            hits = mem.search(query, limit, filters=filters, strategy=strategy, **scope)
        except LightMemError:
            outcomes["refused"] += 1
        else:
            outcomes["answered" if hits else "empty"] += 1
            assert len(hits) <= limit
            wanted = {k: v or None for k, v in scope.items()}
            if isinstance(filters, dict):
                wanted |= {
                    k: filters[k] or None
                    for k in ("user_id", "agent_id", "run_id")
                    if filters.get(k) is not None
                }
            if any(wanted.values()):
                for hit in hits:
                    got = hit.entry.scope
                    assert (got.user_id, got.agent_id, got.run_id) == (
                        wanted.get("user_id"),
                        wanted.get("agent_id"),
                        wanted.get("run_id"),
                    )
        assert snapshot(mem) == before

    check()
    assert outcomes["refused"] and outcomes["answered"], outcomes


def test_reads_and_changes_by_id_raise_only_typed_errors(mem):
    @SETTINGS
    @given(
        entry_id=st.one_of(scalars, st.sampled_from([e.id for e in mem.get_all()])),
        text=st.one_of(st.just("Alice keeps bees"), nasty_text, scalars),
        scope=scopes,
    )
    def check(entry_id, text, scope):
        before = snapshot(mem)
        for call in (
            lambda: mem.get(entry_id),
            lambda: mem.get_all(**scope),
            lambda: mem.history(entry_id),
            lambda: mem.update(entry_id, text) if text != "Alice keeps bees" else None,
        ):
            with contextlib.suppress(LightMemError):
                call()
        entries, journal = snapshot(mem)
        assert journal == before[1]
        assert {e[0] for e in entries} == {e[0] for e in before[0]}

    check()


_CONFIG_KEYS = {
    "extract_threshold": st.one_of(numbers, scalars),
    "hybrid_weights": st.one_of(
        st.fixed_dictionaries({}, optional={"rrf_k": numbers, "embedding": numbers}), scalars
    ),
    "online_update_threshold": numbers,
    "sensory_buffer_tokens": numbers,
    "short_term_buffer_tokens": numbers,
    "retrieve_strategy": st.one_of(st.sampled_from(["embedding", "context", "hybrid"]), scalars),
    "messages_use": st.one_of(st.sampled_from(["user_only", "hybrid"]), scalars),
    "update": st.one_of(st.sampled_from(["online", "offline"]), scalars),
    "require_scope": scalars,
    "lock_timeout": numbers,
    "retry_backoff": numbers,
    "prompts": st.one_of(st.dictionaries(st.sampled_from(["retry", "x"]), nasty_text), scalars),
    "memory_manager": st.one_of(st.none(), st.fixed_dictionaries({"model_name": nasty_text})),
    "text_embedder": st.one_of(
        st.just({"model_name": "hash"}),
        st.fixed_dictionaries({"model_name": st.just("hash"), "configs": json_like}),
    ),
    "bogus": json_like,
}


def test_configurations_raise_only_typed_errors(tmp_path, ref_host):
    target = tmp_path / "a-file"
    target.write_text("x")
    counter = iter(range(10**6))
    outcomes: Counter[str] = Counter()

    @settings(
        max_examples=100,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(
        extra=st.fixed_dictionaries({}, optional=_CONFIG_KEYS),
        shape=st.sampled_from(["dict", "file-dir", "not-a-mapping", "int-keys"]),
    )
    def check(extra, shape):
        base = reference_config(tmp_path / f"m{next(counter)}")
        config: object = {**base, **extra}
        if shape == "file-dir":
            config = {**base, **extra, "memory_dir": str(target)}
        elif shape == "not-a-mapping":
            config = list(config.items())
        elif shape == "int-keys":
            config = {1: 2, **base}
        try:
            memory = LightMemory(config, host=ref_host)
        except LightMemError:
            outcomes["refused"] += 1
            assert target.read_text() == "x"
            return
        outcomes["built"] += 1
        try:
            config_repr = repr(memory.config)
            assert "sk-" not in config_repr
            value = memory.config.extract_threshold
            assert 0.0 <= value <= 1.0 and math.isfinite(value)
        finally:
            memory.close()

    check()
    assert outcomes["refused"] and outcomes["built"], outcomes
