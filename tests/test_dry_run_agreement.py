"""The dry run and a real run agree exactly: calls and prompt tokens, over several call
patterns, with the scripted memory manager booking tokens as the LLM layer counts them; with a
pre-compressor and the built-in embedding topic segmenter too (the dry run runs those local
stages, books nothing and writes nothing)."""

from __future__ import annotations

import pytest
from lightmem_hookspecs import hookimpl

from lightmem_core import LightMemory

#: Three subjects the talk moves between, so that the embedding segmenter finds topics.
SUBJECTS = (
    "we talked about the garden the roses the tomatoes and the compost heap by the fence",
    "the trip to Porto by train with the bikes and the hostel near the river was booked",
    "the new job at the bakery starts early with bread rolls croissants and the oven",
)


def conversation(sessions: int, turns: int) -> list[list[dict]]:
    return [
        [
            {
                "role": "user" if t % 3 else "assistant",
                "content": f"session {s} turn {t}: {SUBJECTS[(t // 3) % 3]} ({s * turns + t})",
                "time_stamp": f"2024-0{1 + s % 9}-{10 + t % 9}T1{t % 10}:00:00",
                "speaker_name": "Alice" if t % 3 else "Bot",
            }
            for t in range(turns)
        ]
        for s in range(sessions)
    ]


def per_session(sessions):
    return [(s, {"force_segment": True}) for s in sessions]


def per_turn(sessions):
    return [([m], {}) for s in sessions for m in s]


def per_session_last_forced(sessions):
    calls = [(s, {}) for s in sessions]
    calls[-1] = (sessions[-1], {"force_extract": True})
    return calls


def halves_with_resends(sessions):
    calls = []
    for s in sessions:
        half = len(s) // 2
        calls += [(s[:half], {}), (s, {"force_segment": True})]  # the first half sent twice
    return calls


PATTERNS = {
    "per_session": per_session,
    "per_turn": per_turn,
    "per_session_last_forced": per_session_last_forced,
    "halves_with_resends": halves_with_resends,
}


class ShortWords:
    """A pre-compressor: keeps the words longer than three letters (deterministic, local)."""

    def compress(self, texts):
        return [" ".join(w for w in t.split() if len(w) > 3) for t in texts]


class ShortWordsPlugin:
    @hookimpl
    def lightmem_register_backends(self, registrar):
        registrar.pre_compressor("short-words", lambda options, context: ShortWords())


#: The local stages before the LLM: none, a compressor, the embedding segmenter, both.
STAGES = {
    "none": {},
    "compressor": {"pre_compress": True, "pre_compressor": {"model_name": "short-words"}},
    "segmenter": {"topic_segment": True, "topic_segmenter": {"model_name": "embedding"}},
    "both": {
        "pre_compress": True,
        "pre_compressor": {"model_name": "short-words"},
        "topic_segment": True,
        "topic_segmenter": {"model_name": "embedding", "configs": {"window": 1}},
    },
}


@pytest.mark.parametrize("stages", sorted(STAGES))
@pytest.mark.parametrize("pattern", sorted(PATTERNS))
@pytest.mark.parametrize(
    ("messages_use", "buffers"), [("user_only", (120, 300)), ("hybrid", (60, 400))]
)
def test_the_dry_run_agrees_exactly_with_the_run(
    scripted_config, ref_host, llm, pattern, messages_use, buffers, stages
):
    sensory, short_term = buffers
    config = {
        **scripted_config,
        **STAGES[stages],
        "messages_use": messages_use,
        "sensory_buffer_tokens": sensory,
        "short_term_buffer_tokens": short_term,
        "background_retry": False,
    }
    ref_host.register(ShortWordsPlugin(), "short-words")
    # a compressor shortens the talk: more of it, so that several batches are flushed
    calls = PATTERNS[pattern](conversation(12 if "pre_compress" in STAGES[stages] else 8, 9))
    with LightMemory(config, host=ref_host) as mem:
        plan = mem.plan()
        for messages, flags in calls:
            estimate = plan.add_memory(
                messages,
                _scope(),
                force_segment=flags.get("force_segment", False),
                force_extract=flags.get("force_extract", False),
            )
        assert llm.requests == []
        # the plan ran the local stages, and wrote and booked nothing
        assert mem.get_token_statistics()["by_operation"] == {}
        assert mem.store.journal("sensory") == [] and mem.store.journal("short_term") == []
        for messages, flags in calls:
            mem.add_memory(messages, **flags)
        extraction = [
            r
            for r in llm.requests
            if r.json_schema and r.json_schema["title"] == "lightmem_extraction"
        ]
        assert len(extraction) == len(llm.requests)  # offline update: extraction calls only
        assert estimate.llm_calls == len(extraction) >= 2
        assert estimate.prompt_tokens == sum(r.prompt_tokens for r in extraction)
        spent = mem.get_token_statistics()["by_operation"]["extract"]
        assert spent["prompt_tokens"] == estimate.prompt_tokens
        held = len(mem.store.journal("short_term")) + len(mem.store.journal("sensory"))
        assert estimate.messages_buffered == held
        if "segment" in stages or stages == "both":
            # the segmenter found topics, so the agreement covers its cuts
            assert any("Topic t2" in r.messages[-1]["content"] for r in extraction)
        if stages in ("compressor", "both"):
            prompts = [r.messages[-1]["content"] for r in extraction]
            assert not any("talked about the garden" in p for p in prompts)
            assert any("talked about garden roses" in p for p in prompts)


def _scope():
    from lightmem_hookspecs import Scope

    return Scope()
