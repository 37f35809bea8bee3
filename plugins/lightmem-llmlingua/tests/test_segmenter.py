"""The llmlingua-2 topic segmenter: attention extraction, reconciliation, shared model."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from lightmem_llmlingua.segmenter import message_blocks, pack_windows, pair_cohesion

from lightmem_core.testing.conformance.topic_segmenter import TOPICS, messages, three_topics
from lightmem_core.testing.reference import HashEmbedder

# -- the arithmetic --------------------------------------------------------------------------


def test_windows_cover_every_neighbour_pair():
    rng = random.Random(0)
    for _ in range(200):
        lengths = [rng.randint(0, 20) for _ in range(rng.randint(2, 40))]
        windows = pack_windows(lengths, 40)
        pairs = {(i - 1, i) for a, b in windows for i in range(a + 1, b)}
        assert pairs == {(i - 1, i) for i in range(1, len(lengths))}
        assert all(b - a >= 2 for a, b in windows)
        assert all(sum(lengths[a:b]) <= 40 for a, b in windows if b - a > 2)


def test_cohesion_drops_where_attention_stops_crossing():
    # Messages 0-1 and 2-3 attend within their topic; nothing crosses between 1 and 2.
    spans = [(1, 4), (4, 7), (7, 10), (10, 13)]
    attention = np.full((14, 14), 0.01)
    for a, b in ((1, 7), (7, 13)):
        attention[a:b, a:b] = 1.0
    attention /= attention.sum(axis=1, keepdims=True)
    cohesion = dict(pair_cohesion(*message_blocks(attention, spans)))
    assert set(cohesion) == {1, 2, 3}
    assert cohesion[2] < min(cohesion[1], cohesion[3])
    assert cohesion[1] == pytest.approx(cohesion[3])


def test_cohesion_skips_empty_messages():
    spans = [(1, 3), (3, 3), (3, 6)]
    attention = np.full((7, 7), 1 / 7)
    assert [j for j, _ in pair_cohesion(*message_blocks(attention, spans))] == []


# -- on the tiny model -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def attention_only(tiny_classifier):
    from lightmem_hookspecs import BackendContext
    from lightmem_llmlingua.options import SegmenterOptions
    from lightmem_llmlingua.plugin import build_segmenter

    ctx = BackendContext(memory_dir="unused")
    return build_segmenter(SegmenterOptions(model_name=tiny_classifier, min_segment=1), ctx)


def test_attention_shift_is_one_finite_value_per_pair(attention_only):
    texts = [m.content for m in three_topics()]
    shift = attention_only.attention_shift(texts)
    assert len(shift) == len(texts) - 1
    assert all(math.isfinite(v) for v in shift)
    assert len(set(shift)) > 1


def test_attention_boundaries_are_inside_the_buffer(attention_only):
    buffer = three_topics()
    cut = attention_only.segment(buffer)
    assert cut == sorted(set(cut)) and all(1 <= i < len(buffer) for i in cut)
    assert cut, "a random encoder still has local maxima above the mean"


def test_long_buffer_uses_several_windows(make_segmenter, tiny_classifier):
    segmenter = make_segmenter(tiny_classifier, buffer_len=32, max_batch_size=3)
    texts = [m.content for m in three_topics()] * 3
    shift = segmenter.attention_shift(texts)
    assert len(shift) == len(texts) - 1 and all(math.isfinite(v) for v in shift)


def test_window_shift_matches_a_direct_forward_pass(attention_only):
    """The batched, padded pass gives the same matrix as one unpadded forward pass."""
    import torch

    texts = [m.content for m in three_topics()][:5]
    _, tokenizer = attention_only.handle.get()
    ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    body = [tokenizer.cls_token_id, *(i for x in ids for i in x), tokenizer.sep_token_id]
    spans, at = [], 1
    for x in ids:
        spans.append((at, at + len(x)))
        at += len(x)
    with attention_only.handle.eager_attention() as eager, torch.no_grad():
        out = eager(input_ids=torch.tensor([body]), output_attentions=True)
    mean = torch.stack(out.attentions[-4:]).mean(dim=(0, 2))[0].numpy()
    expected = [-v for _, v in pair_cohesion(*message_blocks(mean, spans))]
    assert attention_only.attention_shift(texts) == pytest.approx(expected, abs=1e-5)


def test_layers_option(make_segmenter, tiny_classifier):
    texts = [m.content for m in three_topics()]
    low = make_segmenter(tiny_classifier, layers=[0]).attention_shift(texts)
    top = make_segmenter(tiny_classifier, layers=[-1]).attention_shift(texts)
    assert low != pytest.approx(top)
    with pytest.raises(ValueError, match=r"layer 7 does not exist.*4 layers"):
        make_segmenter(tiny_classifier, layers=[7]).segment(three_topics())


def test_attention_mode_is_restored(attention_only, shared_compressor):
    model, _ = attention_only.handle.get()
    before = model.config._attn_implementation
    attention_only.segment(three_topics())
    assert model.config._attn_implementation == before


# -- reconciliation with embeddings ----------------------------------------------------------


class ScriptedShift:
    """Stands in for the encoder's shift profile so the reconciliation rules can be checked."""

    def __init__(self, segmenter, profile):
        self.segmenter, self.profile = segmenter, profile

    def __call__(self, texts):
        assert len(texts) - 1 == len(self.profile)
        return list(self.profile)


def _topic_buffer():
    # Hash embeddings: turns inside a topic share words, so similarity drops at 4 and 8.
    return messages(
        ["dog lake walk dog"] * 4 + ["market bank rates market"] * 4 + ["pasta basil dinner"] * 4
    )


def test_confirm_keeps_embedding_boundaries_near_attention_peaks(make_segmenter, tiny_classifier):
    embedder = HashEmbedder()
    segmenter = make_segmenter(
        tiny_classifier, combine="confirm", tolerance=1, min_segment=1, z=0.5
    )
    segmenter._get_backend = {"text_embedder": embedder}.get
    profile = [0.0] * 11
    profile[4] = 1.0  # attention peak before message 5: confirms 4 (within 1), not 8
    segmenter.attention_shift = ScriptedShift(segmenter, profile)
    assert segmenter.segment(_topic_buffer()) == [4]


def test_confirm_falls_back_to_embeddings(make_segmenter, tiny_classifier):
    segmenter = make_segmenter(tiny_classifier, combine="confirm", tolerance=0, min_segment=1)
    segmenter._get_backend = {"text_embedder": HashEmbedder()}.get
    profile = [0.0] * 11
    profile[0] = 1.0  # an attention peak far from any embedding drop
    segmenter.attention_shift = ScriptedShift(segmenter, profile)
    assert segmenter.segment(_topic_buffer()) == [4, 8]


def test_score_mode_adds_both_signals(make_segmenter, tiny_classifier):
    segmenter = make_segmenter(
        tiny_classifier, combine="score", attention_weight=0.9, z=1.0, min_segment=1
    )
    segmenter._get_backend = {"text_embedder": HashEmbedder()}.get
    profile = [0.0] * 11
    profile[5] = 5.0  # a strong attention shift before message 6 outweighs the embeddings
    segmenter.attention_shift = ScriptedShift(segmenter, profile)
    assert 6 in segmenter.segment(_topic_buffer())


def test_without_embedder_attention_decides(make_segmenter, tiny_classifier):
    segmenter = make_segmenter(tiny_classifier, min_segment=1)
    profile = [0.0] * 11
    profile[2], profile[7] = 1.0, 2.0
    segmenter.attention_shift = ScriptedShift(segmenter, profile)
    assert segmenter.segment(_topic_buffer()) == [3, 8]


def test_min_segment_spaces_boundaries(make_segmenter, tiny_classifier):
    segmenter = make_segmenter(tiny_classifier, min_segment=3)
    profile = [0.0] * 11
    profile[3], profile[5], profile[9] = 2.0, 1.0, 1.5  # 4 and 6 are too close; 10 too late
    segmenter.attention_shift = ScriptedShift(segmenter, profile)
    assert segmenter.segment(_topic_buffer()) == [4]


def test_real_embedder_and_encoder_together(make_segmenter, make_context, tiny_classifier):
    ctx = make_context(backends={"text_embedder": HashEmbedder()})
    segmenter = make_segmenter(tiny_classifier, ctx)
    buffer = three_topics()
    cut = segmenter.segment(buffer)
    assert all(1 <= i < len(buffer) for i in cut)
    assert segmenter.embedder() is not None


# -- sharing and errors ----------------------------------------------------------------------


def test_shared_mode_loads_the_model_once(
    make_compressor, make_segmenter, make_context, tiny_classifier
):
    ctx = make_context(shared=True)
    compressor = make_compressor(tiny_classifier, ctx)
    segmenter = make_segmenter(None, ctx)
    assert segmenter.handle is compressor.handle
    compressor.compress([TOPICS[0][0]])
    segmenter.segment(three_topics())
    compressor.compress([TOPICS[1][0]])
    assert compressor.handle.loads == 1


def test_shared_mode_with_the_same_model_path(
    make_compressor, make_segmenter, make_context, tiny_classifier
):
    ctx = make_context(shared=True)
    segmenter = make_segmenter(tiny_classifier, ctx)  # built first, names the same folder
    compressor = make_compressor(tiny_classifier, ctx)
    assert segmenter.handle is compressor.handle


def test_shared_segmenter_builds_the_compressor_it_needs(
    make_compressor, make_segmenter, make_context, tiny_classifier
):
    built = []
    ctx = make_context(shared=True)

    def get_backend(kind):
        if kind == "pre_compressor":
            built.append(make_compressor(tiny_classifier, ctx))
            return built[-1]
        return None

    ctx.get_backend = get_backend
    segmenter = make_segmenter(None, ctx)
    assert built and segmenter.handle is built[0].handle


def test_separate_models_without_sharing(
    make_compressor, make_segmenter, make_context, tiny_classifier
):
    ctx = make_context(shared=False)
    compressor = make_compressor(tiny_classifier, ctx)
    segmenter = make_segmenter(tiny_classifier, ctx)
    assert segmenter.handle is not compressor.handle


def test_no_model_and_no_sharing(make_segmenter):
    with pytest.raises(ValueError, match="model_name is not set"):
        make_segmenter(None)


def test_sharing_without_an_llmlingua_compressor(make_segmenter, make_context):
    with pytest.raises(ValueError, match="precomp_topic_shared is true but no llmlingua-2"):
        make_segmenter(None, make_context(shared=True))


def test_causal_lm_cannot_segment(make_segmenter, tiny_causal_lm):
    with pytest.raises(ValueError, match="causal language model"):
        make_segmenter(tiny_causal_lm)


def test_missing_segmenter_model(make_segmenter, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"topic_segmenter\.configs\.model_name"):
        make_segmenter(str(tmp_path / "missing"))
