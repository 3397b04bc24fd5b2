"""OpenTelemetry spans, exported over OTLP/HTTP when an endpoint is configured (the standard
OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT variables); without one,
nothing is recorded and the W3C trace context is still carried (taskscheduler.logs)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from taskscheduler import logs

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
_propagator = TraceContextTextMapPropagator()
_tracer: trace.Tracer | None = None


def configure(service: str) -> bool:
    """Exports this process's spans when an OTLP endpoint is configured; True if so."""
    global _tracer
    if not any(os.environ.get(name) for name in ENDPOINT_VARIABLES):
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    _tracer = provider.get_tracer("taskscheduler")
    return True


@contextmanager
def span(name: str, incoming: str | None, **attributes: str | int) -> Iterator[None]:
    """The work of this block as a span, child of the caller's `traceparent`: its context is what
    the block's log lines and broker messages carry on. Without an exporter, the trace context is
    carried all the same (a new span id each hop, nothing recorded)."""
    if _tracer is None:
        logs.continue_trace(incoming)
        yield
        return
    parent = _propagator.extract({"traceparent": incoming} if incoming else {})
    with _tracer.start_as_current_span(name, context=parent, attributes=attributes):
        carrier: dict[str, str] = {}
        _propagator.inject(carrier)
        logs.continue_trace(carrier.get("traceparent"), new_span=False)
        yield
