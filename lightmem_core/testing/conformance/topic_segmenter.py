"""Conformance suite for ``topic_segmenter`` backends.

Subclass :class:`TopicSegmenterConformance` in your plugin's tests and provide a fixture::

    import pytest
    from lightmem_core.testing.conformance.topic_segmenter import TopicSegmenterConformance

    class TestMySegmenter(TopicSegmenterConformance):
        @pytest.fixture
        def backend(self, loaded_segmenter):
            return loaded_segmenter

Fixtures the subclass provides:

``backend`` (required, any scope)
    A ready :class:`~lightmem_hookspecs.TopicSegmenter`. The suite only calls ``segment``.

The tests check the protocol's contract, not the quality of the cut: boundaries are sorted,
distinct ``int`` indices in ``range(1, len(messages))``; zero, one and two messages work; a
buffer longer than any model window works; the same buffer gives the same cut; empty and
non-English messages are accepted.
"""

from __future__ import annotations

from lightmem_hookspecs import Message, TopicSegmenter

from .capabilities import CloseableChecks

TOPICS = [
    [
        "I went hiking with my dog Rex near the lake on Saturday.",
        "Rex chased ducks along the shore for an hour.",
        "We stopped at the old bridge to eat sandwiches.",
        "The trail back was muddy after the rain.",
    ],
    [
        "The stock market fell sharply on Monday.",
        "Analysts blamed the central bank's rate decision.",
        "Bond yields rose to their highest level this year.",
        "My pension fund lost three percent in a week.",
    ],
    [
        "For dinner we cooked pasta with fresh basil.",
        "The sauce had garlic, tomatoes and a little chilli.",
        "We grated parmesan on top and opened a bottle of wine.",
        "Dessert was a lemon tart from the bakery.",
    ],
]


def messages(texts: list[str], role: str = "user") -> list[Message]:
    """Plain :class:`Message` objects for ``texts`` (ids ``m0``, ``m1``, ...)."""
    return [
        Message(id=f"m{i}", role=role, content=text, original_content=text)
        for i, text in enumerate(texts)
    ]


def three_topics() -> list[Message]:
    return messages([text for topic in TOPICS for text in topic])


class TopicSegmenterConformance(CloseableChecks):
    """The ``TopicSegmenter`` contract. Needs a ``backend`` fixture: a ready segmenter."""

    def segment(self, backend, buffer) -> list[int]:
        out = backend.segment(buffer)
        assert isinstance(out, list), f"segment returned {type(out).__name__}, not a list"
        assert all(isinstance(i, int) and not isinstance(i, bool) for i in out), out
        assert out == sorted(set(out)), f"boundaries not sorted and distinct: {out}"
        assert all(1 <= i < len(buffer) for i in out), f"{out} outside 1..{len(buffer) - 1}"
        return out

    def test_implements_protocol(self, backend):
        assert isinstance(backend, TopicSegmenter)

    def test_no_messages(self, backend):
        assert self.segment(backend, []) == []

    def test_one_message(self, backend):
        assert self.segment(backend, messages(["just one message"])) == []

    def test_two_messages(self, backend):
        assert self.segment(backend, messages(TOPICS[0][:1] + TOPICS[1][:1])) in ([], [1])

    def test_boundaries_are_inside_the_buffer(self, backend):
        self.segment(backend, three_topics())

    def test_deterministic(self, backend):
        buffer = three_topics()
        assert self.segment(backend, buffer) == self.segment(backend, buffer)

    def test_buffer_longer_than_a_model_window(self, backend):
        long_turns = [f"{text} " * 6 for topic in TOPICS for text in topic] * 4
        self.segment(backend, messages(long_turns))

    def test_empty_and_non_english_messages(self, backend):
        texts = ["", "我的狗叫Rex，它喜欢海滩。", "   ", "Привет, как дела?", "🙂", "ok"]
        self.segment(backend, messages(texts))

    def test_mixed_roles(self, backend):
        buffer = three_topics()
        buffer = [
            Message(
                id=m.id,
                role="assistant" if i % 2 else "user",
                content=m.content,
                original_content=m.original_content,
            )
            for i, m in enumerate(buffer)
        ]
        self.segment(backend, buffer)
