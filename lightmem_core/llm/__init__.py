"""The LLM layer of the core: prompts, structured output, fact extraction and update decisions.

Everything here is a pure function over the contract's objects: a ``MemoryManager`` (anything
with ``complete(messages, *, json_schema=None, max_tokens=None) -> Completion``), ``Segment``s
and ``MemoryEntry``s. Nothing here touches the record store or the indexes; the pipeline
(:mod:`lightmem_core.memory`, :mod:`lightmem_core.pipeline.update`) calls these functions and
applies the results.

- :mod:`.prompts` — the prompt templates and the overridable :class:`~.prompts.Prompts`.
- :mod:`.structured` — JSON repair, a small JSON-schema validator, ask-validate-retry.
- :mod:`.extraction` — :func:`~.extraction.extract_facts`: one call per short-term batch.
- :mod:`.update` — :func:`~.update.decide_update` (offline) and
  :func:`~.update.reconcile_fact` (online).
"""
