"""Option validators that the core and every backend's options share, and the typed problem
they raise.

A validator is an attrs validator, ``validator(instance, attribute, value)``. It refuses a value
by raising :class:`OptionError` with what is wrong (``message``) and what to do
(``suggestion``); the core reports it at the option's configuration path, e.g.
``$.text_embedder.configs.batch_size: must be >= 1, got 0; leave batch_size out for its
default (32)``. A message never names its option: the path does.

Import validators from here (``from lightmem_hookspecs.options import positive``): a plugin
never imports another plugin, nor writes its own copy of one of these, for a validator.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable
from typing import Any

import attrs

__all__ = [
    "OptionError",
    "at_least",
    "choice",
    "in_range",
    "non_negative",
    "not_blank",
    "positive",
    "tcp_port",
    "unit_interval",
]

Validator = Callable[[Any, Any, Any], None]


class OptionError(ValueError):
    """An option's value is refused.

    ``message`` says what is wrong, ``suggestion`` what to do. ``option`` is the option's name
    and ``within`` a path inside its value (``".device"``, ``"[2]"``) when the problem lies
    there; the core places the problem at the option's ``$.path`` from them. Build one with
    :meth:`at`.
    """

    def __init__(
        self,
        message: str,
        *,
        suggestion: str | None = None,
        option: str | None = None,
        within: str = "",
    ) -> None:
        self.message, self.suggestion = message, suggestion
        self.option, self.within = option, within
        text = message if suggestion is None else f"{message}; {suggestion}"
        super().__init__(f"{option}{within}: {text}" if option else text)

    @classmethod
    def at(
        cls,
        attribute: Any,
        message: str,
        suggestion: str | None = None,
        *,
        within: str = "",
    ) -> OptionError:
        """The problem of the option ``attribute`` (an attrs attribute); without a suggestion,
        the option's default is suggested when it has a plain one."""
        if suggestion is None:
            suggestion = default_hint(attribute)
        return cls(message, suggestion=suggestion, option=attribute.name, within=within)


def default_hint(attribute: Any) -> str | None:
    """``"leave NAME out for its default (VALUE)"`` where the attribute has a plain default."""
    default = getattr(attribute, "default", attrs.NOTHING)
    if default is attrs.NOTHING or isinstance(default, attrs.Factory):  # type: ignore[arg-type]
        return None
    shown = "none" if default is None else repr(default)
    return f"leave {attribute.name} out for its default ({shown})"


def _finite(attribute: Any, value: Any) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise OptionError.at(attribute, f"must be a finite number, got {value}")


def positive(_inst: Any, attribute: Any, value: float | None) -> None:
    """``None`` or a finite number > 0."""
    if value is None:
        return
    _finite(attribute, value)
    if not value > 0:
        raise OptionError.at(attribute, f"must be > 0, got {value}")


def non_negative(_inst: Any, attribute: Any, value: float | None) -> None:
    """``None`` or a finite number >= 0."""
    if value is None:
        return
    _finite(attribute, value)
    if value < 0:
        raise OptionError.at(attribute, f"must be >= 0, got {value}")


def at_least(low: float) -> Validator:
    """``None`` or a finite number >= ``low``."""

    def check(_inst: Any, attribute: Any, value: float | None) -> None:
        if value is None:
            return
        _finite(attribute, value)
        if value < low:
            raise OptionError.at(attribute, f"must be >= {low}, got {value}")

    return check


def in_range(low: float, high: float, *, low_open: bool = False) -> Validator:
    """``None`` or a number within ``[low, high]`` (``(low, high]`` with ``low_open``)."""

    def check(_inst: Any, attribute: Any, value: float | None) -> None:
        if value is None:
            return
        _finite(attribute, value)
        if (value <= low if low_open else value < low) or value > high:
            bracket = "(" if low_open else "["
            raise OptionError.at(attribute, f"must be within {bracket}{low}, {high}], got {value}")

    return check


def unit_interval(_inst: Any, attribute: Any, value: float | None) -> None:
    """``None`` or a number between 0 and 1 (a share, a probability, a similarity)."""
    if value is None:
        return
    _finite(attribute, value)
    if not 0.0 <= value <= 1.0:
        raise OptionError.at(attribute, f"must be between 0 and 1, got {value}")


def choice(*allowed: Any) -> Validator:
    """One of ``allowed`` (include ``None`` to allow leaving it unset)."""
    shown = ", ".join(repr(a) for a in allowed)

    def check(_inst: Any, attribute: Any, value: Any) -> None:
        if value in allowed:
            return
        texts = [a for a in allowed if isinstance(a, str)]
        close = difflib.get_close_matches(value, texts, n=1) if isinstance(value, str) else []
        suggestion = f"did you mean {close[0]!r}?" if close else None
        raise OptionError.at(attribute, f"must be one of {shown}, got {value!r}", suggestion)

    return check


def not_blank(_inst: Any, attribute: Any, value: str | None) -> None:
    """``None`` or a string with something besides white space (a name, a file, a host)."""
    if value is not None and not value.strip():
        raise OptionError.at(attribute, f"must not be empty, got {value!r}")


def tcp_port(_inst: Any, attribute: Any, value: int | None) -> None:
    """``None`` or a TCP port, 1-65535."""
    if value is not None and not 0 < value < 65536:
        raise OptionError.at(attribute, f"must be a TCP port (1-65535), got {value}")
