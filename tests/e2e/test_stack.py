"""End to end: the processes as `make run` starts them; REST -> gateway -> api -> worker."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from taskscheduler.devstack.embedded import free_port
from taskscheduler.devstack.stack import PORTS, Stack, port_variable
from taskscheduler.v1 import task_service_pb2 as pb
from taskscheduler.v1.task_service_pb2_grpc import TaskServiceStub

pytestmark = pytest.mark.e2e


def wait_for_status(
    client: httpx.Client, task_id: str, wanted: str, timeout: float = 30
) -> list[str]:
    """Polls the seed's status endpoint; returns every distinct status seen, in order."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while not seen or seen[-1] != wanted:
        status = client.get(f"/tasks/{task_id}").json()["status"]
        if not seen or seen[-1] != status:
            seen.append(status)
        assert time.monotonic() < deadline, f"{task_id} stuck at {seen}"
        time.sleep(0.02)
    return seen


def test_the_seed_curl_example_reaches_success(client: httpx.Client) -> None:
    response = client.post("/run-task/")
    assert response.status_code == 200
    body = response.json()
    assert body["message"] == "Task scheduled successfully!"
    assert set(body) == {"message", "task_id"}
    assert client.get(f"/v1/tasks/{body['task_id']}").json()["kind"] == "demo.sleep"
    seen = wait_for_status(client, body["task_id"], "SUCCESS")
    assert seen[-2:] == ["RUNNING", "SUCCESS"]
    assert set(seen) <= {"PENDING", "RUNNING", "SUCCESS"}


def test_run_task_accepts_another_kind(client: httpx.Client) -> None:
    response = client.post("/run-task/", json={"kind": "demo.echo", "payload": {"x": 1}})
    task_id = response.json()["task_id"]
    wait_for_status(client, task_id, "SUCCESS")
    assert client.get(f"/tasks/{task_id}").json()["result"] == {"x": 1}


def test_v1_resource_routes(client: httpx.Client) -> None:
    created = client.post(
        "/v1/tasks",
        json={
            "kind": "demo.fail",
            "payload": {"fail_times": 1},
            "retry_policy": {"initial_backoff": 0.1, "jitter": False},
        },
    )
    assert created.status_code == 201
    task = created.json()
    assert task["status"] == "PENDING" and task["retry_policy"]["initial_backoff"] == 0.1
    wait_for_status(client, task["task_id"], "SUCCESS")
    full = client.get(f"/v1/tasks/{task['task_id']}").json()
    assert [a["status"] for a in full["attempts"]] == ["FAILED", "SUCCESS"]
    assert full["attempts"][0]["error_type"].endswith("DemoFailure")
    listed = client.get("/v1/tasks", params={"kind": "demo.fail", "status": ["SUCCESS"]}).json()
    assert task["task_id"] in [t["task_id"] for t in listed["tasks"]]


def test_cancel_over_rest(client: httpx.Client) -> None:
    later = client.post(
        "/v1/tasks", json={"kind": "demo.echo", "run_at": "2100-01-01T00:00:00Z"}
    ).json()
    assert later["status"] == "SCHEDULED"
    cancelled = client.post(f"/v1/tasks/{later['task_id']}:cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "CANCELLED"
    again = client.post(f"/v1/tasks/{later['task_id']}:cancel")
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "field"),
    [
        ("GET", "/tasks/00000000-0000-4000-8000-000000000000", None, 404, None),
        ("GET", "/v1/tasks/00000000-0000-4000-8000-000000000000", None, 404, None),
        ("GET", "/v1/tasks/not-a-uuid", None, 400, "task_id"),
        ("POST", "/v1/tasks", {"kind": "nope"}, 400, "kind"),
        (
            "POST",
            "/v1/tasks",
            {"kind": "demo.sleep", "payload": {"seconds": "x"}},
            400,
            "payload.seconds",
        ),
        ("POST", "/v1/tasks", {"payload": {}}, 400, "kind"),
        ("POST", "/v1/tasks", {"kind": "demo.echo", "run_at": "tomorrow"}, 400, "run_at"),
        (
            "POST",
            "/v1/tasks",
            {"kind": "demo.echo", "retry_policy": {"max_attempts": 0}},
            400,
            "retry_policy.max_attempts",
        ),
        ("GET", "/v1/tasks?page_size=100000", None, 400, "page_size"),
        ("GET", "/v1/tasks?page_token=garbage", None, 400, "page_token"),
    ],
)
def test_errors_are_problem_details_naming_the_field(
    client: httpx.Client, method: str, path: str, body: object, status: int, field: str | None
) -> None:
    before = client.get("/v1/tasks", params={"page_size": 1000}).json()["tasks"]
    response = client.request(method, path, json=body)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status and problem["detail"]
    if field is not None:
        assert problem["field"] == field
    after = client.get("/v1/tasks", params={"page_size": 1000}).json()["tasks"]
    assert len(after) == len(before)  # nothing stored for a rejected request


def test_sse_stream_sends_each_status_then_closes(client: httpx.Client) -> None:
    task = client.post(
        "/v1/tasks",
        json={"kind": "demo.sleep", "payload": {"seconds": 0.2}, "run_at": _in_seconds(1.5)},
    ).json()
    statuses = []
    event = ""
    with client.stream("GET", f"/v1/tasks/{task['task_id']}/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("event:"):
                event = line.removeprefix("event:").strip()
            if line.startswith("data:") and event == "status":  # not the `progress` events
                statuses.append(json.loads(line.removeprefix("data:"))["status"])
    assert statuses == ["SCHEDULED", "PENDING", "RUNNING", "SUCCESS"]


def test_sse_for_an_unknown_task_is_404(client: httpx.Client) -> None:
    response = client.get("/v1/tasks/00000000-0000-4000-8000-000000000000/events")
    assert response.status_code == 404


def test_openapi_docs_are_served(client: httpx.Client) -> None:
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/run-task/", "/tasks/{task_id}", "/v1/tasks", "/v1/tasks/{task_id}/events"):
        assert path in paths


def _in_seconds(seconds: float) -> str:
    from datetime import UTC, datetime, timedelta

    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


@contextmanager
def make_run(data_dir: Path) -> Iterator[tuple[str, str]]:
    """`make run`'s own command on free ports: yields the gateway's URL and the printed token;
    stops it with Ctrl-C (SIGINT) and checks that everything it started has stopped."""
    ports = {port_variable(name): str(free_port()) for name in PORTS}
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env |= ports | {"TASKSCHED_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"}
    launcher = subprocess.Popen(
        [sys.executable, "-m", "taskscheduler.devstack"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert launcher.stdout is not None
        printed = []
        for line in launcher.stdout:
            printed.append(line)
            if "try: curl" in line:
                break
        else:
            raise AssertionError("make run stopped before it was ready:\n" + "".join(printed))
        token = re.search(r"Bearer ([\w.-]+)", printed[-1])
        assert token is not None, printed[-1]
        gateway = f"http://127.0.0.1:{ports['TASKSCHED_GATEWAY_PORT']}"
        assert any(f"Swagger UI: {gateway}/docs" in line for line in printed)
        threading.Thread(target=launcher.stdout.read, daemon=True).start()  # keep it unblocked
        yield gateway, token.group(1)
    except BaseException:
        # Stop everything it started, but report the failure that brought us here.
        launcher.send_signal(signal.SIGINT)
        try:
            launcher.wait(timeout=60)
        except subprocess.TimeoutExpired:
            launcher.kill()
        raise
    launcher.send_signal(signal.SIGINT)
    assert launcher.wait(timeout=60) == 0
    for name, port in ports.items():
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", int(port))) != 0, f"{name} still listens"


@pytest.mark.timeout(300)  # two cold starts and stops of the whole stack
def test_make_run_serves_the_seed_example_and_keeps_tasks_across_restarts(
    tmp_path: Path,
) -> None:
    """`make run` twice on a fresh machine: the printed curl example reaches SUCCESS, Ctrl-C
    stops everything, and the second run finds the first run's tasks."""
    with make_run(tmp_path) as (gateway, token), httpx.Client(base_url=gateway) as c:
        anonymous = c.post("/run-task/")
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"].startswith("Bearer")
        c.headers["authorization"] = f"Bearer {token}"
        response = c.post("/run-task/")
        assert response.status_code == 200
        assert response.json()["message"] == "Task scheduled successfully!"
        task_id = response.json()["task_id"]
        wait_for_status(c, task_id, "SUCCESS")
    with make_run(tmp_path) as (gateway, token):
        response = httpx.get(
            f"{gateway}/tasks/{task_id}", headers={"authorization": f"Bearer {token}"}
        )
        assert response.json()["status"] == "SUCCESS"


def test_the_readme_python_client_follows_a_task_to_success(stack: Stack) -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "grpc_client.py"
    result = subprocess.run(
        [sys.executable, str(example), f"127.0.0.1:{stack.config.grpc_port}"],
        env=os.environ | {"TASKSCHED_TOKEN": stack.token()},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("scheduled ")
    assert lines[-1] == "TASK_STATUS_SUCCESS attempt 1"


def test_rest_is_tenant_scoped_and_scope_checked(stack: Stack, client: httpx.Client) -> None:
    later = client.post("/v1/tasks", json={"kind": "demo.echo", "run_at": "2100-01-01T00:00:00Z"})
    task_id = later.json()["task_id"]
    base = client.base_url
    other = {"authorization": f"Bearer {stack.token(tenant='someone-else')}"}
    unknown = "00000000-0000-4000-8000-000000000000"
    for target in (task_id, unknown):
        for method, path in (
            ("GET", f"/v1/tasks/{target}"),
            ("GET", f"/tasks/{target}"),
            ("POST", f"/v1/tasks/{target}:cancel"),
            ("GET", f"/v1/tasks/{target}/events"),
        ):
            response = httpx.request(method, f"{base}{path}", headers=other)
            assert response.status_code == 404, (method, path)
            assert response.json()["detail"] == f"task {target} not found"
    listed = httpx.get(f"{base}/v1/tasks", headers=other).json()["tasks"]
    assert task_id not in {task["task_id"] for task in listed}
    reader = {"authorization": f"Bearer {stack.token(scopes=['tasks:read'])}"}
    assert httpx.get(f"{base}/v1/tasks/{task_id}", headers=reader).status_code == 200
    denied = httpx.post(f"{base}/v1/tasks/{task_id}:cancel", headers=reader)
    assert denied.status_code == 403 and denied.json()["reason"] == "MISSING_SCOPE"
    assert httpx.post(f"{base}/run-task/", headers=reader).status_code == 403
    anonymous = httpx.get(f"{base}/v1/tasks")
    assert anonymous.status_code == 401 and "Bearer" in anonymous.headers["www-authenticate"]
    assert httpx.get(f"{base}/healthz").status_code == 200  # health and docs stay open
    assert httpx.get(f"{base}/docs").status_code == 200


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ('{"kind": "demo.echo", "payload": {"blob": "' + "x" * 300_000 + '"}}', 413, "payload"),
        ('{"kind": "demo.echo", "payload": {"t": "a\\u0000b"}}', 400, "payload.t"),
        ('{"kind": "demo.echo", "payload": ' + '{"d": ' * 40 + "1" + "}" * 41, 400, None),
        ('{"kind": "demo.echo", "payload": ' + "[" * 5000 + "]" * 5000 + "}", 400, None),
        (b'{"kind": "demo.echo", "payload": {"t": "\xff\xfe"}}', 400, None),
        ('{"kind": "demo.echo", "run_at": "2026-13-45T99:99:99Z"}', 400, "run_at"),
        ('{"kind": "demo.echo", "timeout": -5}', 400, "timeout"),
        ("not json at all", 400, None),
        ('{"kind": "demo.echo", "payload": {"x": NaN}}', 400, "payload"),
        ('{"kind": "demo.echo", "payload": {"x": [1, Infinity]}}', 400, "payload"),
        ('{"kind": "demo.echo", "payload": {"x": -Infinity}}', 400, "payload"),
        ('{"kind": "demo.echo", "payload": {"x": 1e999}}', 400, "payload"),
        ('{"kind": "demo.echo", "payload": {"blob": "' + "x" * 5_000_000 + '"}}', 413, "body"),
    ],
)
def test_hostile_bodies_get_4xx_never_5xx(
    stack: Stack, body: str | bytes, status: int, field: str | None
) -> None:
    with tenant_client(stack) as client:
        response = client.post(
            "/v1/tasks", content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == status, response.text[:300]
        assert response.headers["content-type"] == "application/problem+json"
        assert "Traceback" not in response.text
        if field is not None:
            assert response.json()["field"] == field
        assert client.get("/v1/tasks").json()["tasks"] == []


def tenant_client(stack: Stack) -> httpx.Client:
    """A client of a tenant of its own: what it stored is all its lists show."""
    token = stack.token(tenant=f"hostile-{os.urandom(4).hex()}")
    return httpx.Client(
        base_url=f"http://127.0.0.1:{stack.config.gateway_port}",
        headers={"authorization": f"Bearer {token}"},
        timeout=30,
    )


SCHEDULE = '"cron": "@daily", "task": {"kind": "demo.echo"}'


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            '{"cron": "@daily", "task": {"kind": "demo.echo", "payload": {"x": NaN}}}',
            "task.payload",
        ),
        (
            '{"cron": "@daily", "task": {"kind": "demo.echo", "payload": {"x": Infinity}}}',
            "task.payload",
        ),
        ("{" + SCHEDULE + ', "description": "a\\u0000b"}', "description"),
        ("{" + SCHEDULE + ', "time_zone": "UTC\\u0000"}', "time_zone"),
        ('{"cron": "@daily\\u0000", "task": {"kind": "demo.echo"}}', "cron"),
        ("{" + SCHEDULE[:-1] + ', "concurrency_key": "\\u0000"}}', "task.concurrency_key"),
    ],
)
def test_hostile_schedules_get_4xx_never_5xx(stack: Stack, body: str, field: str) -> None:
    with tenant_client(stack) as client:
        created = client.post(
            "/v1/schedules", json={"cron": "@daily", "task": {"kind": "demo.echo"}}
        )
        schedule_id = created.json()["schedule_id"]
        for method, path in (("POST", "/v1/schedules"), ("PATCH", f"/v1/schedules/{schedule_id}")):
            response = client.request(
                method, path, content=body, headers={"content-type": "application/json"}
            )
            assert response.status_code == 400, (method, response.text[:300])
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["field"] == field, method
        listed = client.get("/v1/schedules").json()["schedules"]
        assert [schedule["schedule_id"] for schedule in listed] == [schedule_id]
        assert listed[0]["description"] == "" and listed[0]["time_zone"] == "UTC"
        assert listed[0]["task"]["payload"] == {} and listed[0]["cron"] == "@daily"


def test_batch_create_over_rest(client: httpx.Client) -> None:
    items = [{"kind": "demo.echo", "payload": {"i": i}} for i in range(3)]
    response = client.post("/v1/tasks:batchCreate", json={"requests": items})
    assert response.status_code == 201
    tasks = response.json()["tasks"]
    assert [t["payload"] for t in tasks] == [{"i": 0}, {"i": 1}, {"i": 2}]
    bad = [*items, {"kind": "demo.sleep", "payload": {"seconds": "x"}}]
    rejected = client.post("/v1/tasks:batchCreate", json={"requests": bad})
    assert rejected.status_code == 400 and rejected.json()["field"] == "requests[3].payload.seconds"


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus' text format (0 when absent)."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def scrape(port: int) -> str:
    return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text


def test_metrics_move_when_tasks_run(stack: Stack, client: httpx.Client) -> None:
    config = stack.config
    before_api = scrape(config.api_metrics_port)
    before_worker = scrape(config.worker_metrics_port)
    before_dispatcher = scrape(config.dispatcher_metrics_port)
    task_id = client.post("/v1/tasks", json={"kind": "demo.echo"}).json()["task_id"]
    wait_for_status(client, task_id, "SUCCESS")
    failing = client.post(
        "/v1/tasks", json={"kind": "demo.fail", "retry_policy": {"max_attempts": 1}}
    ).json()["task_id"]
    wait_for_status(client, failing, "FAILED")

    api = scrape(config.api_metrics_port)
    for kind in ("demo.echo", "demo.fail"):
        scheduled = "taskscheduler_tasks_scheduled_total"
        assert metric(api, scheduled, kind=kind) == metric(before_api, scheduled, kind=kind) + 1
    schedule_calls = metric(
        api,
        "taskscheduler_grpc_requests_total",
        method="/taskscheduler.v1.TaskService/ScheduleTask",
        code="OK",
    )
    assert schedule_calls >= 2
    unknown = client.get("/v1/tasks/00000000-0000-0000-0000-000000000000")
    assert unknown.status_code == 404
    not_found = metric(
        scrape(config.api_metrics_port),
        "taskscheduler_grpc_requests_total",
        method="/taskscheduler.v1.TaskService/GetTask",
        code="NOT_FOUND",
    )
    assert not_found >= 1

    finished = "taskscheduler_attempts_finished_total"
    waited = "taskscheduler_queue_wait_seconds_count"
    deadline = time.monotonic() + 10  # the worker's pool processes write their samples
    while True:
        worker = scrape(config.worker_metrics_port)
        counts = (
            metric(worker, finished, kind="demo.echo", outcome="succeeded")
            - metric(before_worker, finished, kind="demo.echo", outcome="succeeded"),
            metric(worker, finished, kind="demo.fail", outcome="failed")
            - metric(before_worker, finished, kind="demo.fail", outcome="failed"),
            metric(worker, waited, kind="demo.echo")
            - metric(before_worker, waited, kind="demo.echo"),
        )
        if counts == (1, 1, 1) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert counts == (1, 1, 1)

    gateway = client.get("/metrics").text
    route = metric(
        gateway, "taskscheduler_http_requests_total", method="GET", route="/v1/tasks/{task_id}",
        status="404",
    )  # fmt: skip
    assert route >= 1
    dispatcher = scrape(config.dispatcher_metrics_port)
    assert "taskscheduler_tasks{" in dispatcher
    assert metric(dispatcher, "taskscheduler_tasks", status="RUNNING") >= 0
    # The queue the tasks above went through: its dispatches (by the api as it stored them, or
    # by a dispatcher's pass) and its depth, by state.
    labels = {"tenant": "dev", "queue": "default"}
    dispatched = "taskscheduler_queue_dispatched_total"
    through = sum(
        metric(after, dispatched, **labels) - metric(before, dispatched, **labels)
        for before, after in ((before_api, api), (before_dispatcher, dispatcher))
    )
    assert through >= 2
    assert "taskscheduler_queue_depth{" in dispatcher and 'state="RUNNING"' in dispatcher


def test_retry_over_rest(client: httpx.Client) -> None:
    later = client.post(
        "/v1/tasks",
        json={"kind": "demo.echo", "payload": {"n": 3}, "run_at": "2100-01-01T00:00:00Z"},
    ).json()
    waiting = client.post(f"/v1/tasks/{later['task_id']}:retry")
    assert waiting.status_code == 409
    assert waiting.json()["reason"] == "TASK_NOT_FINISHED"
    client.post(f"/v1/tasks/{later['task_id']}:cancel")
    copy = client.post(f"/v1/tasks/{later['task_id']}:retry", headers={"Idempotency-Key": "r1"})
    assert copy.status_code == 201
    body = copy.json()
    assert body["task_id"] != later["task_id"] and body["payload"] == {"n": 3}
    wait_for_status(client, body["task_id"], "SUCCESS")


def json_lines(stack: Stack, process: str) -> list[dict[str, Any]]:
    """The JSON log lines a process of the stack wrote so far."""
    log_stream = stack.config.log_stream
    assert isinstance(log_stream, io.StringIO)
    found = []
    for line in log_stream.getvalue().splitlines():
        prefix, _, rest = line.partition("|")
        if process in prefix and "{" in rest:
            found.append(json.loads(rest[rest.index("{") :]))
    return found


def test_log_lines_carry_the_task_and_the_callers_trace(stack: Stack, client: httpx.Client) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    traceparent = f"00-{trace_id}-00f067aa0ba902b7-01"
    created = client.post(
        "/v1/tasks", json={"kind": "demo.echo"}, headers={"traceparent": traceparent}
    ).json()
    wait_for_status(client, created["task_id"], "SUCCESS")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        about = [
            line
            for line in json_lines(stack, "worker")
            if line.get("task_id") == created["task_id"]
        ]
        if any(line.get("kind") for line in about):
            break
        time.sleep(0.1)
    assert about, "no worker line names the task"
    assert {line["trace_id"] for line in about} == {trace_id}
    assert {line.get("kind") for line in about if "kind" in line} == {"demo.echo"}
    assert all(line["attempt"] == "1" for line in about)


def test_client_hang_ups_and_odd_methods_are_labelled_as_such(
    stack: Stack, client: httpx.Client
) -> None:
    later = client.post(
        "/v1/tasks", json={"kind": "demo.echo", "run_at": "2100-01-01T00:00:00Z"}
    ).json()["task_id"]
    address = f"127.0.0.1:{stack.config.grpc_port}"
    metadata = (("authorization", f"Bearer {stack.token()}"),)
    with grpc.insecure_channel(address) as channel:
        stream = TaskServiceStub(channel).StreamStatus(
            pb.StreamStatusRequest(task_id=later), metadata=metadata
        )
        next(stream)  # the current state
        stream.cancel()
    odd = client.request("XA1", "/v1/tasks")
    assert odd.status_code == 405
    method = "/taskscheduler.v1.TaskService/StreamStatus"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        api = scrape(stack.config.api_metrics_port)
        if metric(api, "taskscheduler_grpc_requests_total", method=method, code="CANCELLED"):
            break
        time.sleep(0.1)
    assert metric(api, "taskscheduler_grpc_requests_total", method=method, code="CANCELLED") >= 1
    assert metric(api, "taskscheduler_grpc_requests_total", method=method, code="UNKNOWN") == 0
    gateway = client.get("/metrics").text
    assert metric(gateway, "taskscheduler_http_requests_total", method="OTHER") >= 1
    assert 'method="XA1"' not in gateway
    client.post(f"/v1/tasks/{later}:cancel")
