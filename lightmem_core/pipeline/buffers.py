"""The buffer policy, one for ingestion and the dry run: when the sensory buffer moves on to
the short-term buffer, and when the short-term buffer is flushed to one extraction batch.

- The sensory buffer moves on when forced (``force_segment`` / ``force_extract``) or when its
  messages hold at least ``sensory_buffer_tokens`` tokens (all roles).
- The short-term buffer is flushed when forced (``force_extract``) or when the messages the
  extraction would show (the roles ``messages_use`` admits) hold at least
  ``short_term_buffer_tokens`` tokens.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from lightmem_hookspecs import Message

from ..llm.extraction import ROLES_BY_USE
from ..messages import count_tokens

__all__ = ["ROLES_BY_USE", "sensory_moves_on", "short_term_flushes", "uses"]


def uses(config: Any, message: Message) -> bool:
    """Whether the extraction shows ``message`` (its role is admitted by ``messages_use``)."""
    return message.role in ROLES_BY_USE[config.messages_use]


def sensory_moves_on(config: Any, messages: Iterable[Message], force: bool) -> bool:
    """Whether the sensory buffer holding ``messages`` moves on to segmentation."""
    held = list(messages)
    if not held:
        return False
    return force or sum(count_tokens(m.content) for m in held) >= config.sensory_buffer_tokens


def short_term_flushes(config: Any, messages: Iterable[Message], force: bool) -> bool:
    """Whether the short-term buffer holding ``messages`` is flushed to an extraction batch."""
    held = list(messages)
    if not held:
        return False
    shown = sum(count_tokens(m.content) for m in held if uses(config, m))
    return force or shown >= config.short_term_buffer_tokens
