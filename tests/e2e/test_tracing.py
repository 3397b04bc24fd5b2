"""OpenTelemetry: with an OTLP endpoint configured, one REST call's trace holds the gateway's,
the api's and the worker's spans, each the child of the one before."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from taskscheduler.devstack.embedded import free_port
from taskscheduler.devstack.stack import Stack, on_free_ports
from tests.e2e.conftest import start_stack
from tests.servers import Servers, fresh_database

pytestmark = pytest.mark.e2e

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


class Collector:
    """A minimal OTLP/HTTP receiver: keeps every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, Any]] = []  # (service name, span)
        self.lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                request = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
                with collector.lock:
                    for resource in request.resource_spans:
                        service = next(
                            a.value.string_value
                            for a in resource.resource.attributes
                            if a.key == "service.name"
                        )
                        for scope in resource.scope_spans:
                            collector.spans.extend((service, span) for span in scope.spans)
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def of_trace(self, trace_id: str) -> list[tuple[str, Any]]:
        with self.lock:
            return [(s, span) for s, span in self.spans if span.trace_id.hex() == trace_id]


@pytest.fixture(scope="module")
def traced(
    servers: Servers, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Stack, Collector]]:
    collector = Collector()
    config = on_free_ports(
        tmp_path_factory.mktemp("traced"),
        database_url=fresh_database(servers.database_url),
        redis_url=servers.redis_url,
        extra_env={
            "TASKSCHED_CELERY_QUEUE": f"traced-{free_port()}",
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        },
        log_stream=io.StringIO(),
    )
    stack = start_stack(config)
    yield stack, collector
    stack.stop()
    collector.server.shutdown()


def test_one_trace_from_the_rest_call_to_the_worker(traced: tuple[Stack, Collector]) -> None:
    stack, collector = traced
    with httpx.Client(
        base_url=f"http://127.0.0.1:{stack.config.gateway_port}",
        headers={"authorization": f"Bearer {stack.token()}"},
    ) as client:
        created = client.post(
            "/v1/tasks",
            json={"kind": "demo.echo"},
            headers={"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"},
        ).json()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        services = {service for service, _ in collector.of_trace(TRACE_ID)}
        if {"taskscheduler-gateway", "taskscheduler-api", "taskscheduler-worker"} <= services:
            break
        time.sleep(0.1)
    spans = collector.of_trace(TRACE_ID)
    by_service = {service: span for service, span in spans if service != "taskscheduler-api"}
    api = next(
        span for service, span in spans
        if service == "taskscheduler-api" and span.name.endswith("/ScheduleTask")
    )  # fmt: skip
    gateway, worker = by_service["taskscheduler-gateway"], by_service["taskscheduler-worker"]
    assert gateway.parent_span_id.hex() == "00f067aa0ba902b7"
    assert api.parent_span_id == gateway.span_id
    assert worker.parent_span_id == api.span_id
    attributes = {a.key: a.value.string_value for a in worker.attributes}
    assert attributes["task_id"] == created["task_id"]
