"""Evaluation harness: evidence recall, context size, throughput and latency on benchmark files."""

from .metrics import evidence_recall, percentile, word_count

__all__ = ["evidence_recall", "percentile", "word_count"]
