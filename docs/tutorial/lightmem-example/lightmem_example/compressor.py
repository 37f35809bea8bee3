"""The ``filler-filter`` backend: a PreCompressor that drops filler words."""

from __future__ import annotations

import re
from collections.abc import Sequence


class FillerFilter:
    def __init__(self, fillers: Sequence[str]) -> None:
        alternatives = "|".join(re.escape(f) for f in sorted(fillers, key=len, reverse=True))
        self._pattern = re.compile(rf"\b(?:{alternatives})\b,?\s*", re.IGNORECASE)

    def compress(self, texts: Sequence[str]) -> list[str]:
        out = []
        for text in texts:
            kept = self._pattern.sub("", text).strip()
            out.append(kept or text)  # never return empty for non-empty input
        return out
