"""The llama-cpp manager's KV cache on the real SmolLM2 GGUF: lossless, persistent, bounded.

The model runs in the plugin's worker process (native code never runs in the test process).
Answers are greedy (``top_k=1``), so "lossless" is checked as equal texts, token for token.
"""

from __future__ import annotations

import json
import warnings

import attrs
import pytest
from lightmem_llamacpp.errors import KVCacheWarning
from lightmem_llamacpp.kvcache import MAGIC, SUFFIX
from lightmem_llamacpp.manager import LlamaCppManager
from lightmem_llamacpp.plugin import LlamaCppOptions

from lightmem_core.llm.extraction import _output_format
from lightmem_core.llm.prompts import Prompts

OPTIONS = LlamaCppOptions(n_ctx=2048, max_tokens=16, n_threads=1, kv_cache_block=32)

PROMPTS = Prompts()
CONVERSATIONS = [
    '1 Alice: "I adopted a dog named Rex last Sunday."',
    '1 Bob: "I moved to Porto and started a job at a bakery."',
    '1 Carol: "My sister plays the cello in an orchestra."',
    '1 Dan: "I ran my first marathon in Berlin."',
]


def request(conversation: str) -> list[dict[str, str]]:
    text = PROMPTS.render(
        "extraction",
        conversation=conversation,
        output_format=_output_format(False, False, False),
    )
    return [{"role": "system", "content": PROMPTS.system}, {"role": "user", "content": text}]


def manager(smollm2, kv_dir=None, **options) -> LlamaCppManager:
    return LlamaCppManager(
        attrs.evolve(OPTIONS, **options), model_path=smollm2, kv_cache_dir=kv_dir
    )


def answers(backend: LlamaCppManager, conversations=CONVERSATIONS) -> list[tuple[str, int]]:
    out = []
    for conversation in conversations:
        result = backend.complete(request(conversation))
        out.append((result.text, result.cached_tokens))
    return out


@pytest.mark.slow
def test_answers_are_identical_with_and_without_the_cache_across_processes(smollm2, tmp_path):
    plain = manager(smollm2)
    without = answers(plain)
    plain.close()
    kv = tmp_path / "kv"
    first = manager(smollm2, kv)  # builds the cache: the shared prefix is saved once
    built = answers(first)
    stats = first.cache_stats()
    first.close()
    assert [t for t, _ in built] == [t for t, _ in without]
    assert stats["states_saved"] >= 1 and stats["files"] >= 1
    second = manager(smollm2, kv)  # a fresh worker restores it from the file
    restored = answers(second)
    stats = second.cache_stats()
    second.close()
    assert [t for t, _ in restored] == [t for t, _ in without]
    # the first call of the fresh worker evaluated only what follows the saved prefix
    static = len(PROMPTS.system) // 8  # a lower bound: the static part is hundreds of tokens
    assert restored[0][1] >= static
    assert stats["hits"] >= 1
    assert stats["restored_tokens"] >= restored[0][1]
    assert (
        stats["evaluated_tokens"] + stats["restored_tokens"] + stats["reused_tokens"]
        == (stats["prompt_tokens"])
    )
    # without the cache a fresh worker's first call evaluates everything
    assert without[0][1] == 0


@pytest.mark.slow
def test_a_corrupt_or_foreign_cache_file_is_rebuilt_with_a_warning(smollm2, tmp_path):
    kv = tmp_path / "kv"
    first = manager(smollm2, kv)
    expected = answers(first, CONVERSATIONS[:2])
    first.close()
    (saved,) = sorted(kv.glob(f"*{SUFFIX}"))
    data = saved.read_bytes()
    for damage, reason in [
        (data[: len(data) // 2], "truncated"),
        (b"garbage" * 10, "not a LightMem KV cache file"),
        (data.replace(data[len(MAGIC) : data.index(b"\n", len(MAGIC))], _foreign(data)), "model"),
    ]:
        saved.write_bytes(damage)
        backend = manager(smollm2, kv)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            got = answers(backend, CONVERSATIONS[:2])
        stats = backend.cache_stats()
        backend.close()
        assert [t for t, _ in got] == [t for t, _ in expected]
        messages = [str(w.message) for w in caught if issubclass(w.category, KVCacheWarning)]
        assert len(messages) == 1 and reason in messages[0], messages
        assert stats["states_rebuilt"] == 1
        assert saved.is_file() and saved.read_bytes().startswith(MAGIC)  # saved again


def _foreign(data: bytes) -> bytes:
    end = data.index(b"\n", len(MAGIC))
    header = json.loads(data[len(MAGIC) : end])
    header["model_sha256"] = "0" * 64
    return json.dumps(header).encode()


@pytest.mark.slow
def test_the_cache_stays_under_its_size_limit(smollm2, tmp_path):
    kv = tmp_path / "kv"
    backend = manager(smollm2, kv, kv_cache_max_mb=1)  # smaller than one state
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        answers(backend, CONVERSATIONS[:2])
    stats = backend.cache_stats()
    backend.close()
    assert stats["files"] == 0 and stats["bytes"] == 0
    assert any("exceeds kv_cache_max_mb" in str(w.message) for w in caught)


def test_kv_cache_settings_reach_the_manager(smollm2, tmp_path):
    from lightmem_hookspecs import BackendContext
    from lightmem_llamacpp.plugin import build

    on = BackendContext(
        memory_dir=str(tmp_path),
        settings={"kv_cache": True, "kv_cache_path": str(tmp_path / "kv")},
    )
    off = BackendContext(memory_dir=str(tmp_path), settings={"kv_cache": False})
    assert build(attrs.evolve(OPTIONS, model_path=str(smollm2)), on).kv_cache_dir == tmp_path / "kv"
    assert build(attrs.evolve(OPTIONS, model_path=str(smollm2)), off).kv_cache_dir is None
    assert build(attrs.evolve(OPTIONS, model_path=str(smollm2))).kv_cache_dir is None
