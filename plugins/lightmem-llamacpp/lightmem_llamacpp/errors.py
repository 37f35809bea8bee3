"""Errors the model engines raise inside the worker process (shared by every engine)."""


class PromptTooLong(Exception):
    """The prompt (plus the answer) does not fit the context window."""


class KVCacheWarning(UserWarning):
    """A KV cache file was unusable (corrupt, truncated, from another model or build) and was
    removed; the prefix is evaluated and saved again. Never raised: issued as a warning."""
