"""LightMem's error types: one base class, each message says what, where and what to do."""

from __future__ import annotations


class LightMemError(Exception):
    """Base class of every error LightMem raises on purpose."""


class ConfigError(LightMemError, ValueError):
    """The configuration is invalid. ``errors`` lists one ``"$.path: problem"`` line per problem."""

    def __init__(self, errors: list[str] | str, *, source: str | None = None) -> None:
        self.errors = [errors] if isinstance(errors, str) else list(errors)
        self.source = source
        where = f" in {source}" if source else ""
        lines = "\n".join(f"  {e}" for e in self.errors)
        super().__init__(f"invalid LightMem configuration{where}:\n{lines}")


class NotImplementedYetError(ConfigError):
    """A configuration key names a feature LightMem does not implement yet."""


class BackendNotFoundError(ConfigError):
    """The configuration names a backend no installed plugin provides."""


class PluginLoadError(LightMemError):
    """A plugin failed to import or register (raised only where loading must not go on)."""


class DuplicateBackendError(LightMemError):
    """Two plugins register the same backend name for one kind."""


class BackendError(LightMemError):
    """A backend failed while doing its work (model missing, store unreachable, ...)."""


class InputError(LightMemError, ValueError):
    """Input to the API is invalid (a message, a query, a file to ingest)."""


class StoreError(LightMemError):
    """The record store or an index is inconsistent or unusable."""


class ExtractionError(BackendError):
    """The memory manager did not produce a valid extraction after bounded retries."""
