"""LightMem's error types: one base class, each message says what, where and what to do."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs


class LightMemError(Exception):
    """Base class of every error LightMem raises on purpose."""


@attrs.frozen
class ConfigProblem:
    """One problem of a configuration: where (``path``, ``$.a.b[0].c``), what is wrong
    (``message``) and what to do (``suggestion``). A problem written as one line of text
    (``path`` ``None``) says where itself."""

    path: str | None
    message: str
    suggestion: str | None = None

    def __str__(self) -> str:
        text = self.message if self.suggestion is None else f"{self.message}; {self.suggestion}"
        return text if self.path is None else f"{self.path}: {text}"


class ConfigError(LightMemError, ValueError):
    """The configuration is invalid. ``problems`` lists each problem as a
    :class:`ConfigProblem`; ``errors`` the same as ``"$.path: problem; suggestion"`` lines."""

    def __init__(
        self,
        errors: Sequence[str | ConfigProblem] | str | ConfigProblem,
        *,
        source: str | None = None,
    ) -> None:
        items = [errors] if isinstance(errors, str | ConfigProblem) else list(errors)
        self.problems = [
            p if isinstance(p, ConfigProblem) else ConfigProblem(None, p) for p in items
        ]
        self.errors = [str(p) for p in self.problems]
        self.source = source
        where = f" in {source}" if source else ""
        lines = "\n".join(f"  {e}" for e in self.errors)
        super().__init__(f"invalid LightMem configuration{where}:\n{lines}")


class NotImplementedYetError(ConfigError):
    """A configuration key names a feature LightMem does not implement yet."""


class BackendNotFoundError(ConfigError):
    """The configuration names a backend no installed plugin provides."""


class DuplicateBackendError(LightMemError):
    """Two plugins register the same backend name for one kind."""


class PluginContractError(LightMemError):
    """A plugin's backend does not implement what the plugin contract requires of its kind."""


class HookError(LightMemError):
    """A hook implementation broke its contract (e.g. added a message in a segment hook)."""


class BackendError(LightMemError):
    """A backend failed while doing its work (model missing, store unreachable, ...)."""


class InputError(LightMemError, ValueError):
    """Input to the API is invalid (a message, a query, a file to ingest)."""


class StoreError(LightMemError):
    """The record store or an index is inconsistent or unusable."""


class ExtractionError(BackendError):
    """The memory manager did not produce a valid extraction after bounded retries."""


class ScopeRequiredError(InputError):
    """A call named no user, agent or run id while the memory requires a scope."""


class EmptyScopeError(InputError):
    """A scope id (``user_id``, ``agent_id``, ``run_id``) was the empty string. Pass ``None``
    (or leave it out) for unset; ``""`` would otherwise read as "every scope"."""


class MemoryDirInUseError(StoreError):
    """Another ``LightMemory`` (in this or another process) owns the memory directory.

    ``pid`` is the owning process id as recorded in the lock file (``None`` if unknown).
    """

    def __init__(self, message: str, *, pid: int | None = None, path: str = "") -> None:
        super().__init__(message)
        self.pid = pid
        self.path = path


class TruncatedAnswerError(ExtractionError):
    """The LLM's answer was cut at its token limit (``finish_reason: "length"``)."""


class UnexpectedError(LightMemError):
    """Something failed that LightMem did not anticipate; the original exception is chained
    (``__cause__``). Nothing already accepted was lost; please report it."""


_PASS_THROUGH = (KeyboardInterrupt, SystemExit, GeneratorExit)


def typed(exc: BaseException, where: str) -> LightMemError:
    """``exc`` as a LightMem error: itself if it is one, else an :class:`UnexpectedError`
    (e.g. a Rust backend's ``PanicException``, a ``BaseException``) with ``exc`` chained."""
    if isinstance(exc, LightMemError):
        return exc
    error = UnexpectedError(f"{where}: {type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error


def guard_public_api(cls: type) -> type:
    """Wrap every public method of ``cls`` (and ``__init__``) so that only
    :class:`LightMemError` subclasses escape; anything else is chained in an
    :class:`UnexpectedError`. ``KeyboardInterrupt`` and ``SystemExit`` pass unchanged."""
    import functools
    import inspect

    for name, member in list(vars(cls).items()):
        if name.startswith("_") and name != "__init__":
            continue
        is_classmethod = isinstance(member, classmethod)
        func = member.__func__ if is_classmethod else member
        if not inspect.isfunction(func):
            continue

        def make(func: Any, where: str) -> Any:
            @functools.wraps(func)
            def guarded(*args: Any, **kwargs: Any) -> Any:
                try:
                    return func(*args, **kwargs)
                except LightMemError:
                    raise
                except _PASS_THROUGH:
                    raise
                except BaseException as exc:
                    raise typed(exc, where) from exc

            return guarded

        wrapped = make(func, f"{cls.__name__}.{name}")
        setattr(cls, name, classmethod(wrapped) if is_classmethod else wrapped)
    return cls
