"""Errors the model engines raise inside the worker process (shared by every engine)."""


class PromptTooLong(Exception):
    """The prompt (plus the answer) does not fit the context window."""
