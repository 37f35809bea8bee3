"""OpenTelemetry spans for LightMem operations (a hook plugin selected with ``hooks: [otel]``)."""
