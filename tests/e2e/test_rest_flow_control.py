"""End to end over REST: queues (create, read, list, merge-patch, pause, resume, purge, delete)
and the task fields that use them, then cron schedules, through the gateway and the api on the
test PostgreSQL. Each test is a tenant of its own, so that its queues and counts are its own."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from taskscheduler.devstack.stack import Stack
from tests.helpers import rest_wait_for_status

pytestmark = pytest.mark.e2e

PROBLEM_JSON = "application/problem+json"
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


def tenant_client(stack: Stack, tenant: str) -> httpx.Client:
    return httpx.Client(
        base_url=f"http://127.0.0.1:{stack.config.gateway_port}",
        timeout=30,
        headers={"authorization": f"Bearer {stack.token(tenant=tenant)}"},
    )


@pytest.fixture
def tenant() -> str:
    return f"flow-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def client(stack: Stack, tenant: str) -> Iterator[httpx.Client]:
    """A client of a tenant of its own (this module's tests count their tenant's tasks)."""
    with tenant_client(stack, tenant) as opened:
        yield opened


def problem_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["detail"]
    return body


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


# -- queues ----------------------------------------------------------------------------------


def test_queue_create_get_list_patch_pause_resume_delete(client: httpx.Client) -> None:
    created = ok(
        client.post(
            "/v1/queues",
            json={
                "name": "emails",
                "rate_limit": {"per_second": 2.5},
                "max_concurrent": 3,
                "max_concurrent_per_key": 1,
                "retry_policy": {"max_attempts": 2, "initial_backoff": 0.5},
                "timeout": 30,
            },
        ),
        201,
    )
    assert created["name"] == "emails" and created["state"] == "RUNNING"
    assert created["rate_limit"] == {"per_second": 2.5, "burst": 3}  # one second's worth
    assert created["max_concurrent"] == 3 and created["max_concurrent_per_key"] == 1
    assert created["retry_policy"] == {
        "max_attempts": 2,
        "initial_backoff": 0.5,
        "max_backoff": None,
        "backoff_multiplier": None,
        "jitter": None,
    }
    assert created["timeout"] == 30
    assert created["waiting_count"] == 0 and created["running_count"] == 0
    assert datetime.fromisoformat(created["create_time"]).tzinfo is not None

    assert ok(client.get("/v1/queues/emails")) == created
    problem_of(client.post("/v1/queues", json={"name": "emails"}), 409)

    listed = ok(client.get("/v1/queues"))
    assert [q["name"] for q in listed["queues"]] == ["default", "emails"]
    assert listed["next_page_token"] == ""
    first = ok(client.get("/v1/queues", params={"page_size": 1}))
    assert [q["name"] for q in first["queues"]] == ["default"] and first["next_page_token"]
    second = ok(
        client.get("/v1/queues", params={"page_size": 1, "page_token": first["next_page_token"]})
    )
    assert [q["name"] for q in second["queues"]] == ["emails"]
    assert second["next_page_token"] == ""

    # Merge-patch: only the keys present change; null clears a setting.
    patched = ok(client.patch("/v1/queues/emails", json={"max_concurrent": 10}))
    assert patched["max_concurrent"] == 10
    assert {k: v for k, v in patched.items() if k not in ("max_concurrent", "update_time")} == {
        k: v for k, v in created.items() if k not in ("max_concurrent", "update_time")
    }
    cleared = ok(client.patch("/v1/queues/emails", json={"rate_limit": None, "timeout": None}))
    assert cleared["rate_limit"] is None and cleared["timeout"] is None
    assert cleared["max_concurrent"] == 10 and cleared["retry_policy"] == created["retry_policy"]
    cleared = ok(
        client.patch("/v1/queues/emails", json={"max_concurrent": None, "retry_policy": None})
    )
    assert cleared["max_concurrent"] == 0 and cleared["retry_policy"] is None
    assert cleared["max_concurrent_per_key"] == 1
    replaced = ok(
        client.patch("/v1/queues/emails", json={"rate_limit": {"per_second": 100, "burst": 7}})
    )
    assert replaced["rate_limit"] == {"per_second": 100, "burst": 7}
    assert ok(client.patch("/v1/queues/emails", json={})) == replaced  # an empty patch: no change
    problem_of(client.patch("/v1/queues/emails", json={"state": "PAUSED"}), 400)

    paused = ok(client.post("/v1/queues/emails:pause"))
    assert paused["state"] == "PAUSED"
    assert ok(client.post("/v1/queues/emails:pause"))["state"] == "PAUSED"  # idempotent
    assert ok(client.get("/v1/queues/emails"))["state"] == "PAUSED"
    assert ok(client.post("/v1/queues/emails:resume"))["state"] == "RUNNING"
    assert ok(client.post("/v1/queues/emails:resume"))["state"] == "RUNNING"

    deleted = client.delete("/v1/queues/emails")
    assert deleted.status_code == 204 and deleted.content == b""
    problem_of(client.get("/v1/queues/emails"), 404)
    assert [q["name"] for q in ok(client.get("/v1/queues"))["queues"]] == ["default"]


def test_purge_counts_the_waiting_tasks_and_delete_needs_an_empty_queue(
    client: httpx.Client,
) -> None:
    ok(client.post("/v1/queues", json={"name": "batch"}), 201)
    ok(client.post("/v1/queues/batch:pause"))
    tasks = [
        ok(
            client.post(
                "/v1/tasks",
                json={
                    "kind": "demo.echo",
                    "queue": "batch",
                    "priority": 7,
                    "concurrency_key": "customer-1",
                },
            ),
            201,
        )
        for _ in range(3)
    ]
    later = ok(
        client.post(
            "/v1/tasks",
            json={"kind": "demo.echo", "queue": "batch", "run_at": "2100-01-01T00:00:00Z"},
        ),
        201,
    )
    for task in tasks:
        assert task["queue"] == "batch" and task["priority"] == 7
        assert task["concurrency_key"] == "customer-1"
        assert task["schedule_id"] == "" and task["fire_time"] is None
    assert later["status"] == "SCHEDULED" and later["priority"] == 5
    queue = ok(client.get("/v1/queues/batch"))
    assert queue["waiting_count"] == 4 and queue["running_count"] == 0

    in_batch = ok(client.get("/v1/tasks", params={"queue": "batch"}))["tasks"]
    assert {t["task_id"] for t in in_batch} == {t["task_id"] for t in [*tasks, later]}
    assert ok(client.get("/v1/tasks", params={"queue": "default"}))["tasks"] == []

    problem = problem_of(client.delete("/v1/queues/batch"), 409)
    assert problem["grpc_code"] == "FAILED_PRECONDITION"

    purged = ok(client.post("/v1/queues/batch:purge"))
    assert purged["cancelled_count"] == 4
    assert purged["queue"]["name"] == "batch" and purged["queue"]["waiting_count"] == 0
    for task in [*tasks, later]:
        assert ok(client.get(f"/v1/tasks/{task['task_id']}"))["status"] == "CANCELLED"
    assert ok(client.post("/v1/queues/batch:purge"))["cancelled_count"] == 0

    assert client.delete("/v1/queues/batch").status_code == 204


def test_a_paused_queue_holds_its_tasks_until_resumed(client: httpx.Client) -> None:
    ok(client.post("/v1/queues", json={"name": "held", "max_concurrent_per_key": 1}), 201)
    ok(client.post("/v1/queues/held:pause"))
    task = ok(
        client.post(
            "/v1/tasks",
            json={"kind": "demo.echo", "payload": {"n": 1}, "queue": "held", "priority": 9},
        ),
        201,
    )
    time.sleep(1)  # time enough for a dispatcher to let it through, were the queue running
    assert ok(client.get(f"/v1/tasks/{task['task_id']}"))["status"] == "PENDING"
    ok(client.post("/v1/queues/held:resume"))
    rest_wait_for_status(client, task["task_id"], "SUCCESS")
    done = ok(client.get(f"/v1/tasks/{task['task_id']}"))
    assert done["result"] == {"n": 1}
    assert (done["queue"], done["priority"], done["concurrency_key"]) == ("held", 9, "")


def test_the_seed_route_and_the_batch_route_take_the_queue_fields(client: httpx.Client) -> None:
    ok(client.post("/v1/queues", json={"name": "side"}), 201)
    seeded = ok(
        client.post(
            "/run-task/",
            json={"kind": "demo.echo", "queue": "side", "priority": 2, "concurrency_key": "k"},
        )
    )
    assert set(seeded) == {"message", "task_id"}
    task = ok(client.get(f"/v1/tasks/{seeded['task_id']}"))
    assert (task["queue"], task["priority"], task["concurrency_key"]) == ("side", 2, "k")

    batch = ok(
        client.post(
            "/v1/tasks:batchCreate",
            json={
                "requests": [
                    {"kind": "demo.echo", "queue": "side", "priority": 0},
                    {"kind": "demo.echo"},
                ]
            },
        ),
        201,
    )["tasks"]
    assert [(t["queue"], t["priority"]) for t in batch] == [("side", 0), ("default", 5)]
    rejected = client.post(
        "/v1/tasks:batchCreate",
        json={"requests": [{"kind": "demo.echo"}, {"kind": "demo.echo", "queue": "missing"}]},
    )
    assert problem_of(rejected, 400)["field"].endswith("queue")
    assert len(ok(client.get("/v1/tasks"))["tasks"]) == 3  # the rejected batch stored nothing


def test_the_default_queue_is_there_and_cannot_be_deleted(client: httpx.Client) -> None:
    default = ok(client.get("/v1/queues/default"))
    assert default["name"] == "default" and default["state"] == "RUNNING"
    problem = problem_of(client.delete("/v1/queues/default"), 409)
    assert problem["grpc_code"] == "FAILED_PRECONDITION"
    assert ok(client.get("/v1/queues/default"))["name"] == "default"


def test_another_tenants_queue_is_not_found(stack: Stack, client: httpx.Client) -> None:
    ok(client.post("/v1/queues", json={"name": "private"}), 201)
    with tenant_client(stack, f"other-{uuid.uuid4().hex[:12]}") as other:
        problem_of(other.get("/v1/queues/private"), 404)
        problem_of(other.patch("/v1/queues/private", json={"max_concurrent": 1}), 404)
        for verb in ("pause", "resume", "purge"):
            problem_of(other.post(f"/v1/queues/private:{verb}"), 404)
        problem_of(other.delete("/v1/queues/private"), 404)
        assert "private" not in [q["name"] for q in ok(other.get("/v1/queues"))["queues"]]
        scheduled = other.post("/v1/tasks", json={"kind": "demo.echo", "queue": "private"})
        assert problem_of(scheduled, 400)["field"] == "queue"
        # Its own queue of the same name is another queue.
        ok(other.post("/v1/queues", json={"name": "private", "max_concurrent": 2}), 201)
    assert ok(client.get("/v1/queues/private"))["max_concurrent"] == 0


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "field"),
    [
        ("GET", "/v1/queues/nope", None, 404, None),
        ("PATCH", "/v1/queues/nope", {"max_concurrent": 1}, 404, None),
        ("DELETE", "/v1/queues/nope", None, 404, None),
        ("POST", "/v1/queues/nope:pause", None, 404, None),
        ("POST", "/v1/queues/nope:resume", None, 404, None),
        ("POST", "/v1/queues/nope:purge", None, 404, None),
        ("POST", "/v1/queues", {"name": "Bad Name"}, 400, "name"),
        ("POST", "/v1/queues", {"name": "-dash-first"}, 400, "name"),
        ("POST", "/v1/queues", {"name": "x" * 64}, 400, "name"),
        ("POST", "/v1/queues", {}, 400, "name"),
        ("POST", "/v1/queues", {"name": "q", "bogus": 1}, 400, "bogus"),
        ("POST", "/v1/queues", {"name": "q", "max_concurrent": -1}, 400, "max_concurrent"),
        (
            "POST",
            "/v1/queues",
            {"name": "q", "rate_limit": {"per_second": 0}},
            400,
            "rate_limit.per_second",
        ),
        ("POST", "/v1/queues", {"name": "q", "rate_limit": {}}, 400, "rate_limit.per_second"),
        ("POST", "/v1/queues", {"name": "q", "timeout": 0}, 400, "timeout"),
        ("GET", "/v1/queues/Bad_Name", None, 400, "name"),
        ("POST", "/v1/queues/UPPER:pause", None, 400, "name"),
        ("DELETE", "/v1/queues/a%20b", None, 400, "name"),
        ("PATCH", "/v1/queues/default", {"name": "other"}, 400, "name"),
        (
            "PATCH",
            "/v1/queues/default",
            {"retry_policy": {"max_attempts": 0}},
            400,
            "retry_policy.max_attempts",
        ),
        ("PATCH", "/v1/queues/default", {"max_concurrent_per_key": "many"}, 400, None),
        ("GET", "/v1/queues?page_size=5000", None, 400, "page_size"),
        ("GET", "/v1/queues?page_token=garbage", None, 400, "page_token"),
        ("POST", "/v1/tasks", {"kind": "demo.echo", "queue": "missing"}, 400, "queue"),
        ("POST", "/v1/tasks", {"kind": "demo.echo", "queue": "Not A Name"}, 400, "queue"),
        ("POST", "/v1/tasks", {"kind": "demo.echo", "priority": 10}, 400, "priority"),
        ("POST", "/v1/tasks", {"kind": "demo.echo", "priority": -1}, 400, "priority"),
        ("POST", "/v1/tasks", {"kind": "demo.echo", "concurrency_key": "k" * 201}, 400, None),
        ("POST", "/run-task/", {"queue": "missing"}, 400, "queue"),
        ("GET", "/v1/tasks?queue=Not%20A%20Name", None, 400, "queue"),
        ("GET", "/v1/tasks?schedule_id=not-a-uuid", None, 400, "schedule_id"),
        # An offset past the ends of the timestamp range (found by schemathesis: was a 500).
        (
            "POST",
            "/v1/tasks",
            {"kind": "demo.echo", "run_at": "0001-01-01T00:00:00+00:03"},
            400,
            "run_at",
        ),
    ],
)
def test_queue_errors_are_problem_details_naming_the_field(
    client: httpx.Client,
    method: str,
    path: str,
    body: object,
    status: int,
    field: str | None,
) -> None:
    response = client.request(method, path, json=body)
    problem = problem_of(response, status)
    if field is not None:
        assert problem["field"] == field
    assert [q["name"] for q in ok(client.get("/v1/queues"))["queues"]] == ["default"]
    assert ok(client.get("/v1/tasks"))["tasks"] == []  # nothing stored for a rejected request


def test_queue_routes_need_a_token(stack: Stack) -> None:
    base = f"http://127.0.0.1:{stack.config.gateway_port}"
    for method, path, body in [
        ("GET", "/v1/queues", None),
        ("POST", "/v1/queues", {"name": "q"}),
        ("GET", "/v1/queues/default", None),
        ("PATCH", "/v1/queues/default", {"max_concurrent": 1}),
        ("DELETE", "/v1/queues/default", None),
        ("POST", "/v1/queues/default:pause", None),
        ("POST", "/v1/queues/default:purge", None),
    ]:
        response = httpx.request(method, base + path, json=body, timeout=10)
        assert problem_of(response, 401)["grpc_code"] == "UNAUTHENTICATED", (method, path)


def test_the_openapi_documents_the_new_routes(client: httpx.Client) -> None:
    spec = ok(client.get("/openapi.json"))
    paths = spec["paths"]
    assert set(paths["/v1/queues/{name}"]) == {"get", "patch", "delete"}
    assert set(paths["/v1/schedules/{schedule_id}"]) == {"get", "patch", "delete"}
    for verb in ("pause", "resume", "purge"):
        assert "post" in paths[f"/v1/queues/{{name}}:{verb}"]
    for verb in ("pause", "resume", "trigger"):
        assert "post" in paths[f"/v1/schedules/{{schedule_id}}:{verb}"]
    assert "201" in paths["/v1/schedules/{schedule_id}:trigger"]["post"]["responses"]
    assert "204" in paths["/v1/queues/{name}"]["delete"]["responses"]
    task = spec["components"]["schemas"]["TaskOut"]["properties"]
    assert {"queue", "priority", "concurrency_key", "schedule_id", "fire_time"} <= set(task)
    queue = spec["components"]["schemas"]["QueueOut"]["properties"]
    assert queue["state"]["enum"] == ["RUNNING", "PAUSED"]
    listed = {p["name"] for p in paths["/v1/tasks"]["get"]["parameters"]}
    assert {"queue", "schedule_id"} <= listed


# -- schedules -------------------------------------------------------------------------------


NIGHTLY = {
    "cron": "0 3 * * *",
    "time_zone": "Europe/Paris",
    "task": {
        "kind": "demo.echo",
        "payload": {"report": "nightly"},
        "priority": 7,
        "concurrency_key": "reports",
        "retry_policy": {"max_attempts": 2, "initial_backoff": 1.5},
        "timeout": 30,
    },
    "overlap": "BUFFER_ONE",
    "catchup_window": 3600,
    "description": "the nightly report",
}


def test_a_schedule_created_paused_fires_only_once_resumed(client: httpx.Client) -> None:
    created = ok(client.post("/v1/schedules", json={**NIGHTLY, "paused": True}), 201)
    assert created["paused"] is True and created["next_fire_times"] == []
    resumed = ok(client.post(f"/v1/schedules/{created['schedule_id']}:resume"))
    assert resumed["paused"] is False and len(resumed["next_fire_times"]) == 5


def test_schedule_create_get_list_patch_pause_resume_trigger_delete(
    client: httpx.Client,
) -> None:
    created = ok(client.post("/v1/schedules", json=NIGHTLY), 201)
    schedule_id = created["schedule_id"]
    assert uuid.UUID(schedule_id).version == 4
    assert created["cron"] == "0 3 * * *" and created["time_zone"] == "Europe/Paris"
    assert created["overlap"] == "BUFFER_ONE" and created["catchup_window"] == 3600
    assert created["paused"] is False and created["description"] == "the nightly report"
    assert created["task"] == {
        "kind": "demo.echo",
        "payload": {"report": "nightly"},
        "queue": created["task"]["queue"],  # "" or "default", as the api stores it
        "priority": 7,
        "concurrency_key": "reports",
        "retry_policy": {
            "max_attempts": 2,
            "initial_backoff": 1.5,
            "max_backoff": None,
            "backoff_multiplier": None,
            "jitter": None,
        },
        "timeout": 30,
    }
    assert created["task"]["queue"] in ("", "default")
    fires = [datetime.fromisoformat(t) for t in created["next_fire_times"]]
    assert 1 <= len(fires) <= 5 and fires == sorted(fires)
    assert all(fire > datetime.now(UTC) for fire in fires)
    assert created["last_fire_time"] is None and created["last_task_id"] == ""

    assert ok(client.get(f"/v1/schedules/{schedule_id}"))["cron"] == "0 3 * * *"
    listed = ok(client.get("/v1/schedules"))
    assert [s["schedule_id"] for s in listed["schedules"]] == [schedule_id]
    assert listed["next_page_token"] == ""

    patched = ok(
        client.patch(
            f"/v1/schedules/{schedule_id}", json={"cron": "*/10 * * * *", "description": None}
        )
    )
    assert patched["cron"] == "*/10 * * * *" and patched["description"] == ""
    assert patched["overlap"] == "BUFFER_ONE" and patched["task"] == created["task"]
    patched = ok(
        client.patch(
            f"/v1/schedules/{schedule_id}",
            json={"catchup_window": None, "overlap": None, "time_zone": None},
        )
    )
    assert patched["overlap"] == "SKIP"
    assert patched["catchup_window"] is None or patched["catchup_window"] <= 60  # the default
    assert patched["time_zone"] in ("", "UTC")
    assert ok(client.patch(f"/v1/schedules/{schedule_id}", json={})) == patched
    problem = problem_of(client.patch(f"/v1/schedules/{schedule_id}", json={"cron": None}), 400)
    assert problem["field"] == "cron"
    problem = problem_of(client.patch(f"/v1/schedules/{schedule_id}", json={"paused": True}), 400)
    assert problem["field"] == "paused"

    paused = ok(client.post(f"/v1/schedules/{schedule_id}:pause"))
    assert paused["paused"] is True and paused["next_fire_times"] == []
    assert ok(client.post(f"/v1/schedules/{schedule_id}:pause"))["paused"] is True
    resumed = ok(client.post(f"/v1/schedules/{schedule_id}:resume"))
    assert resumed["paused"] is False and resumed["next_fire_times"]

    task = ok(client.post(f"/v1/schedules/{schedule_id}:trigger"), 201)
    assert task["schedule_id"] == schedule_id and task["fire_time"] is not None
    assert task["kind"] == "demo.echo" and task["payload"] == {"report": "nightly"}
    assert task["priority"] == 7 and task["concurrency_key"] == "reports"
    made = ok(client.get("/v1/tasks", params={"schedule_id": schedule_id}))["tasks"]
    assert [t["task_id"] for t in made] == [task["task_id"]]
    assert ok(client.get("/v1/tasks", params={"schedule_id": UNKNOWN_ID}))["tasks"] == []
    after = ok(client.get(f"/v1/schedules/{schedule_id}"))
    assert after["last_task_id"] == task["task_id"]

    deleted = client.delete(f"/v1/schedules/{schedule_id}")
    assert deleted.status_code == 204 and deleted.content == b""
    problem_of(client.get(f"/v1/schedules/{schedule_id}"), 404)
    assert ok(client.get(f"/v1/tasks/{task['task_id']}"))["schedule_id"] == schedule_id


def test_a_paused_schedule_can_be_triggered_and_its_task_runs(client: httpx.Client) -> None:
    ok(client.post("/v1/queues", json={"name": "cron-jobs"}), 201)
    created = ok(
        client.post(
            "/v1/schedules",
            json={"cron": "@yearly", "task": {"kind": "demo.echo", "queue": "cron-jobs"}},
        ),
        201,
    )
    assert created["overlap"] == "SKIP" and created["time_zone"] in ("", "UTC")
    schedule_id = created["schedule_id"]
    paused = ok(client.post(f"/v1/schedules/{schedule_id}:pause"))
    assert paused["paused"] is True and paused["next_fire_times"] == []
    task = ok(client.post(f"/v1/schedules/{schedule_id}:trigger"), 201)
    assert task["queue"] == "cron-jobs" and task["schedule_id"] == schedule_id
    rest_wait_for_status(client, task["task_id"], "SUCCESS")


def test_another_tenants_schedule_is_not_found(stack: Stack, client: httpx.Client) -> None:
    created = ok(client.post("/v1/schedules", json=NIGHTLY), 201)
    path = f"/v1/schedules/{created['schedule_id']}"
    with tenant_client(stack, f"other-{uuid.uuid4().hex[:12]}") as other:
        problem_of(other.get(path), 404)
        problem_of(other.patch(path, json={"description": "mine"}), 404)
        for verb in ("pause", "resume", "trigger"):
            problem_of(other.post(f"{path}:{verb}"), 404)
        problem_of(other.delete(path), 404)
        assert ok(other.get("/v1/schedules"))["schedules"] == []
    assert ok(client.get(path))["description"] == "the nightly report"


def _template(**fields: object) -> dict[str, object]:
    return {"cron": "@daily", "task": {"kind": "demo.echo", **fields}}


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "field"),
    [
        # Checked by the gateway: these run whatever the api implements.
        ("GET", "/v1/schedules/not-a-uuid", None, 400, "schedule_id"),
        ("POST", "/v1/schedules/not-a-uuid:trigger", None, 400, "schedule_id"),
        ("POST", "/v1/schedules", {"task": {"kind": "demo.echo"}}, 400, "cron"),
        ("POST", "/v1/schedules", {"cron": "@daily"}, 400, "task"),
        ("POST", "/v1/schedules", {**_template(), "overlap": "NEVER"}, 400, "overlap"),
        ("POST", "/v1/schedules", {**_template(), "catchup_window": -1}, 400, "catchup_window"),
        ("POST", "/v1/schedules", {**_template(), "catchup_window": 1e6}, 400, "catchup_window"),
        ("POST", "/v1/schedules", {**_template(), "paused": "maybe"}, 400, "paused"),
        ("POST", "/v1/schedules", {**_template(), "description": "x" * 1001}, 400, "description"),
        ("POST", "/v1/schedules", _template(priority=10), 400, "task.priority"),
        ("POST", "/v1/schedules", _template(queue="Bad Name"), 400, "task.queue"),
        ("POST", "/v1/schedules", {**_template(), "schedule_id": UNKNOWN_ID}, 400, "schedule_id"),
        ("PATCH", f"/v1/schedules/{UNKNOWN_ID}", {"task": None}, 400, "task"),
        ("GET", "/v1/schedules?page_size=5000", None, 400, "page_size"),
        # Checked by the api.
        ("GET", f"/v1/schedules/{UNKNOWN_ID}", None, 404, None),
        ("DELETE", f"/v1/schedules/{UNKNOWN_ID}", None, 404, None),
        ("POST", f"/v1/schedules/{UNKNOWN_ID}:trigger", None, 404, None),
        ("POST", f"/v1/schedules/{UNKNOWN_ID}:pause", None, 404, None),
        ("PATCH", f"/v1/schedules/{UNKNOWN_ID}", {"description": "x"}, 404, None),
        ("POST", "/v1/schedules", {**_template(), "cron": "every day"}, 400, "cron"),
        ("POST", "/v1/schedules", {**_template(), "time_zone": "Mars/Olympus"}, 400, "time_zone"),
        ("POST", "/v1/schedules", {"cron": "@daily", "task": {"kind": "nope"}}, 400, "task.kind"),
        ("POST", "/v1/schedules", _template(queue="missing"), 400, "task.queue"),
        ("GET", "/v1/schedules?page_token=garbage", None, 400, "page_token"),
    ],
)
def test_schedule_errors_are_problem_details_naming_the_field(
    client: httpx.Client,
    method: str,
    path: str,
    body: object,
    status: int,
    field: str | None,
) -> None:
    problem = problem_of(client.request(method, path, json=body), status)
    if field is not None:
        assert problem["field"] == field
    listed = client.get("/v1/schedules")
    if listed.status_code != 501:  # nothing stored for a rejected request
        assert ok(listed)["schedules"] == []
