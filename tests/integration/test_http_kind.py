"""The http.request kind against a local HTTP server: 2xx, 5xx then 2xx, 404, refused."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from taskscheduler.devstack.embedded import free_port
from taskscheduler.v1 import task_pb2
from taskscheduler.v1.task_service_pb2_grpc import TaskServiceStub
from tests.helpers import follow, request, schedule

S = task_pb2
FAST_RETRY = {"max_attempts": 3, "initial_backoff": timedelta(milliseconds=50), "jitter": False}

pytestmark = pytest.mark.usefixtures("worker", "dispatcher")


class Target(BaseHTTPRequestHandler):
    calls: ClassVar[Counter[str]] = Counter()
    received: ClassVar[list[dict[str, object]]] = []

    def do_POST(self) -> None:
        self.calls[self.path] += 1
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        self.received.append({"path": self.path, "headers": dict(self.headers), "body": body})
        if self.path == "/ok":
            self._answer(200, json.dumps({"thanks": True}))
        elif self.path == "/flaky":
            self._answer(
                503 if self.calls[self.path] == 1 else 201,
                "busy" if self.calls[self.path] == 1 else "made",
            )
        elif self.path == "/big":
            self._answer(200, "x" * 10_000)
        else:
            self._answer(404, "no such hook")

    def _answer(self, status: int, body: str) -> None:
        encoded = body.encode()
        self.send_response(status)
        self.send_header("content-length", str(len(encoded)))
        self.end_headers()
        self.wfile.write(encoded)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def target() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Target)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


async def run(stub: TaskServiceStub, payload: dict[str, object]) -> task_pb2.Task:
    task = await schedule(stub, request("http.request", payload, **FAST_RETRY))  # type: ignore[arg-type]
    events = await follow(stub, task.id)
    final: task_pb2.Task = events[-1].task
    return final


async def test_2xx_is_success_with_status_and_body(stub: TaskServiceStub, target: str) -> None:
    final = await run(
        stub, {"url": f"{target}/ok", "json": {"order": 7}, "headers": {"X-Key": "k"}}
    )
    assert final.status == S.TASK_STATUS_SUCCESS
    result = final.result.struct_value
    assert result["status_code"] == 200 and json.loads(str(result["body"])) == {"thanks": True}
    sent = next(r for r in Target.received if r["path"] == "/ok")
    assert json.loads(sent["body"]) == {"order": 7}  # type: ignore[arg-type]
    headers = sent["headers"]
    assert isinstance(headers, dict)
    assert headers["X-Key"] == "k" and headers["X-Task-Id"] == final.id


async def test_5xx_is_retried_then_succeeds(stub: TaskServiceStub, target: str) -> None:
    final = await run(stub, {"url": f"{target}/flaky", "body": "hi"})
    assert final.status == S.TASK_STATUS_SUCCESS and final.attempt == 2
    assert final.result.struct_value["status_code"] == 201
    assert "answered 503" in final.attempts[0].error_message


async def test_404_fails_at_once(stub: TaskServiceStub, target: str) -> None:
    final = await run(stub, {"url": f"{target}/nowhere"})
    assert final.status == S.TASK_STATUS_FAILED and final.attempt == 1
    assert final.attempts[0].error_type == "taskscheduler.core.kinds.NonRetryableError"
    assert "answered 404" in final.error


async def test_connection_refused_is_retried_until_the_last_attempt(stub: TaskServiceStub) -> None:
    final = await run(stub, {"url": f"http://127.0.0.1:{free_port()}/hook"})
    assert final.status == S.TASK_STATUS_FAILED and final.attempt == 3
    assert all(a.error_type == "httpx.ConnectError" for a in final.attempts)


async def test_the_body_excerpt_is_bounded(stub: TaskServiceStub, target: str) -> None:
    final = await run(stub, {"url": f"{target}/big"})
    result = final.result.struct_value
    assert len(str(result["body"])) == 4096 and result["truncated"] is True
