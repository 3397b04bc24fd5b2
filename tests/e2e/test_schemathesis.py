"""Schemathesis against the gateway's OpenAPI: with a valid token no response is a server error
or breaks the schema, and no request that breaks the schema gets a server error; without a
token, every route but health and the docs answers 401."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.schemas import APIOperation
from schemathesis.specs.openapi.checks import positive_data_acceptance
from schemathesis.specs.openapi.schemas import OpenApiSchema

from taskscheduler.devstack.stack import Stack

pytestmark = pytest.mark.e2e
ONE_BROKER = True  # the REST contract's answers, not the tasks' runs

OPEN_ROUTES = {"/healthz"}
VALID_BODIES: dict[str, object] = {
    "/v1/tasks": {"kind": "demo.echo"},
    "/v1/tasks:batchCreate": {"requests": [{"kind": "demo.echo"}]},
    "/v1/tasks:batchCancel": {"task_ids": ["00000000-0000-4000-8000-000000000000"]},
    "/v1/tasks:batchRetry": {"task_ids": ["00000000-0000-4000-8000-000000000000"]},
    "/v1/queues": {"name": "q"},
    "/v1/queues/{name}": {"max_concurrent": 1},
    "/v1/schedules": {"cron": "@daily", "task": {"kind": "demo.echo"}},
    "/v1/schedules/{schedule_id}": {"description": "x"},
    "/v1/workflows": {"steps": [{"name": "a", "task": {"kind": "demo.echo"}}]},
}
# The short run in `make test` draws the same examples every time (a stable CI); a longer run,
# TASKSCHED_SCHEMATHESIS_EXAMPLES=3000, explores new ones.
EXAMPLES = int(os.environ.get("TASKSCHED_SCHEMATHESIS_EXAMPLES", "150"))
EXPLORE = "TASKSCHED_SCHEMATHESIS_EXAMPLES" in os.environ


@pytest.fixture(scope="module")
def gateway_schema(stack: Stack) -> OpenApiSchema:
    return schemathesis.openapi.from_url(
        f"http://127.0.0.1:{stack.config.gateway_port}/openapi.json"
    )


Operation = APIOperation[Any, Any, Any, Any]


def _operations(schema: OpenApiSchema) -> list[Operation]:
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operations.append(result.ok())
    return operations


def _fuzz(operations: list[Operation], call: Callable[[st.DataObject, Operation], None]) -> None:
    """Draws an operation and a case for it, EXAMPLES times; `call` sends and checks it."""

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=not EXPLORE,
    )
    @given(data=st.data())
    def call_any_operation(data: st.DataObject) -> None:
        call(data, data.draw(st.sampled_from(operations)))

    call_any_operation()


def test_valid_token_no_server_errors_and_conforming_responses(
    stack: Stack, gateway_schema: OpenApiSchema
) -> None:
    # A tenant of its own: the fuzzer pauses, purges and limits queues (`default` among them)
    # that the other end-to-end tests' tenant relies on.
    credentials = {"Authorization": f"Bearer {stack.token(tenant='schemathesis')}"}

    def call(data: st.DataObject, operation: Operation) -> None:
        case = data.draw(operation.as_strategy())
        # Kinds and their payloads are validated by the api against its registry, which the
        # OpenAPI schema cannot express: schema-valid bodies may be rejected with a 400.
        case.call_and_validate(
            headers=credentials, timeout=30, excluded_checks=[positive_data_acceptance]
        )

    _fuzz(_operations(gateway_schema), call)


def test_schema_breaking_requests_never_get_a_server_error(
    stack: Stack, gateway_schema: OpenApiSchema
) -> None:
    """Negative data: wrong types, missing and extra fields, out-of-range values; whether each
    is refused is the positive run's concern, here only that none is a 5xx."""
    credentials = {"Authorization": f"Bearer {stack.token(tenant='schemathesis-negative')}"}

    def call(data: st.DataObject, operation: Operation) -> None:
        case = data.draw(operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))
        case.call_and_validate(headers=credentials, timeout=30, checks=[not_a_server_error])

    operations = _operations(gateway_schema)
    _fuzz([op for op in operations if op.path not in OPEN_ROUTES], call)  # nothing to break


def test_every_route_rejects_missing_and_bad_credentials(
    stack: Stack, gateway_schema: OpenApiSchema
) -> None:
    base = f"http://127.0.0.1:{stack.config.gateway_port}"
    sample_id = "00000000-0000-4000-8000-000000000000"
    checked = 0
    for route in _operations(gateway_schema):
        if route.path in OPEN_ROUTES:
            continue
        path = route.path
        for name in ("{task_id}", "{schedule_id}", "{workflow_id}"):
            path = path.replace(name, sample_id)
        url = base + path.replace("{name}", "default")
        for headers in ({}, {"authorization": "Bearer not-a-token"}):
            body = VALID_BODIES.get(route.path)
            response = httpx.request(
                route.method.upper(), url, headers=headers, json=body, timeout=10
            )
            assert response.status_code == 401, (route.method, route.path, headers)
            assert response.headers["www-authenticate"].startswith("Bearer")
        checked += 1
    assert checked >= 35
