"""The ``otel`` hook plugin: one OpenTelemetry span per LightMem operation.

Every unit of work the core runs through ``lightmem_run_operation`` (the names in
``lightmem_hookspecs.OPERATION_NAMES``: ``add_memory``, ``extract``, ``llm.complete``,
``search`` once per retriever, ``rerank``, ``update``...) becomes a span named
``lightmem.<operation>``, nested as the operations nest, with attributes:

* ``lightmem.operation``, ``lightmem.backend`` (the backend's name, when one runs it), the
  operation's details as ``lightmem.<key>`` (numbers, strings and booleans only);
* ``lightmem.user_id`` / ``lightmem.agent_id`` / ``lightmem.run_id`` (the call's scope, where
  it has one) and ``lightmem.memory_dir``;
* after the work, its usage (nested operations included): ``lightmem.usage.llm_calls``,
  ``gen_ai.usage.input_tokens``, ``gen_ai.usage.output_tokens``,
  ``lightmem.usage.embedder_calls``, ``lightmem.usage.embedded_texts``;
* an error sets the span's status to ERROR and records the exception.

Spans go to the tracer provider the application configured (``opentelemetry.trace``); with
none configured they cost next to nothing. Nothing here imports OpenTelemetry until the first
operation runs.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import attrs
from lightmem_hookspecs import HookContext, Operation, hookimpl
from lightmem_hookspecs.options import not_blank

#: The plugin contract (lightmem-hookspecs) version this plugin is built for.
LIGHTMEM_CONTRACT = "1.3"

_SCALARS = (str, bool, int, float)


@attrs.frozen
class OtelOptions:
    """Options of the ``otel`` hook plugin (``hooks: [{plugin: otel, options: {...}}]``)."""

    #: The instrumentation scope name the spans are created under.
    tracer_name: str = attrs.field(default="lightmem", validator=not_blank)
    #: Whether the operation's details become ``lightmem.<key>`` attributes.
    details: bool = True


#: The options class the core validates ``hooks[i].options`` with.
LIGHTMEM_HOOK_OPTIONS = OtelOptions


def options_of(context: HookContext) -> OtelOptions:
    return OtelOptions(**dict(context.options or {}))  # validated when the memory opened


def _start_attributes(operation: Operation, context: HookContext, options: OtelOptions) -> dict:
    attributes: dict[str, Any] = {
        "lightmem.operation": operation.name,
        "lightmem.memory_dir": context.memory_dir,
    }
    if operation.backend:
        attributes["lightmem.backend"] = operation.backend
    if context.scope is not None:
        for key, value in context.scope.as_dict().items():
            if value is not None:
                attributes[f"lightmem.{key}"] = value
    if options.details:
        for key, value in operation.details.items():
            if isinstance(value, _SCALARS):
                attributes[f"lightmem.{key}"] = value
    return attributes


def _usage_attributes(operation: Operation) -> dict[str, int]:
    usage = operation.usage
    return {
        "lightmem.usage.llm_calls": usage.llm_calls,
        "gen_ai.usage.input_tokens": usage.prompt_tokens,
        "gen_ai.usage.output_tokens": usage.completion_tokens,
        "lightmem.usage.embedder_calls": usage.embedder_calls,
        "lightmem.usage.embedded_texts": usage.embedded_texts,
    }


@hookimpl(wrapper=True)
def lightmem_run_operation(operation: Operation, context: HookContext) -> Generator[None, Any, Any]:
    from opentelemetry import trace
    from opentelemetry.trace import Status, StatusCode

    options = options_of(context)
    tracer = trace.get_tracer(options.tracer_name)
    with tracer.start_as_current_span(
        f"lightmem.{operation.name}",
        attributes=_start_attributes(operation, context, options),
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            result = yield
        except BaseException as exc:
            span.set_attributes(_usage_attributes(operation))
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            raise
        span.set_attributes(_usage_attributes(operation))
        return result
