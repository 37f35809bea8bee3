"""LightMem memory managers for OpenAI-compatible chat-completions endpoints.

Importing this package is cheap: the ``openai`` client loads only when a backend is built.
"""

__version__ = "0.1.0"
