"""Option validators the plugins share (attrs validators; the core reports a failure with its
option's ``$.path``). Write a validator once here when a second plugin needs it."""

from __future__ import annotations

from typing import Any


def positive(_inst: Any, attribute: Any, value: float | None) -> None:
    """``None`` or a number > 0."""
    if value is not None and not value > 0:
        raise ValueError(f"{attribute.name}: must be > 0, got {value}")


def k1_positive(inst: Any, attribute: Any, value: float) -> None:
    """BM25's ``k1``: > 0."""
    positive(inst, attribute, value)


def b_in_unit_interval(_inst: Any, attribute: Any, value: float) -> None:
    """BM25's ``b``: between 0 and 1."""
    if not 0 <= value <= 1:
        raise ValueError(f"{attribute.name}: must be between 0 and 1, got {value}")


def path_not_empty(_inst: Any, attribute: Any, value: str) -> None:
    """A file name option: not empty."""
    if not value.strip():
        raise ValueError(f"{attribute.name}: must name a file, got an empty string")


def at_least_one(_inst: Any, attribute: Any, value: int | None) -> None:
    """``None`` or a count >= 1."""
    if value is not None and value < 1:
        raise ValueError(f"{attribute.name}: must be >= 1, got {value}")


def non_negative(_inst: Any, attribute: Any, value: float | None) -> None:
    """``None`` or a number >= 0."""
    if value is not None and value < 0:
        raise ValueError(f"{attribute.name}: must be >= 0, got {value}")


def unit_interval(_inst: Any, attribute: Any, value: float | None) -> None:
    """``None`` or a number between 0 and 1."""
    if value is not None and not 0.0 <= value <= 1.0:
        raise ValueError(f"{attribute.name}: must be between 0 and 1, got {value}")
