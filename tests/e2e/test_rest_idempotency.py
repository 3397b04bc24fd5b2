"""`Idempotency-Key` on REST: one key, one task, however often and however concurrently sent."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

pytestmark = pytest.mark.e2e
ONE_BROKER = True  # idempotency keys, decided in PostgreSQL


def create(client: httpx.Client, key: str, payload: dict[str, object]) -> httpx.Response:
    return client.post(
        "/v1/tasks",
        json={"kind": "demo.echo", "payload": payload},
        headers={"idempotency-key": key},
    )


def tasks_with(client: httpx.Client, marker: str) -> list[str]:
    listed = client.get("/v1/tasks", params={"kind": "demo.echo", "page_size": 1000}).json()
    return [t["task_id"] for t in listed["tasks"] if t["payload"].get("marker") == marker]


def test_the_same_key_and_body_give_the_same_task(client: httpx.Client) -> None:
    key, marker = f"key-{uuid.uuid4()}", str(uuid.uuid4())
    first = create(client, key, {"marker": marker})
    again = create(client, key, {"marker": marker})
    assert first.status_code == 201
    assert again.status_code in (200, 201)
    assert again.json()["task_id"] == first.json()["task_id"]
    assert tasks_with(client, marker) == [first.json()["task_id"]]


def test_the_same_key_with_another_body_is_409_and_changes_nothing(client: httpx.Client) -> None:
    key, marker = f"key-{uuid.uuid4()}", str(uuid.uuid4())
    first = create(client, key, {"marker": marker})
    other = create(client, key, {"marker": marker, "changed": True})
    assert other.status_code == 409
    assert other.headers["content-type"].startswith("application/problem+json")
    assert other.json()["reason"] == "IDEMPOTENCY_KEY_REUSED"
    task = client.get(f"/v1/tasks/{first.json()['task_id']}").json()
    assert task["payload"] == {"marker": marker}


def test_concurrent_requests_with_one_key_make_one_task(client: httpx.Client) -> None:
    key, marker = f"key-{uuid.uuid4()}", str(uuid.uuid4())
    bodies = [{"marker": marker}] * 12 + [{"marker": marker, "other": True}] * 4
    with ThreadPoolExecutor(max_workers=16) as pool:
        responses = list(pool.map(lambda body: create(client, key, body), bodies))
    made = tasks_with(client, marker)
    assert len(made) == 1
    winner = client.get(f"/v1/tasks/{made[0]}").json()["payload"]
    # Whichever body took the key first, every request with it got that task, the others 409.
    for body, response in zip(bodies, responses, strict=True):
        if body == winner:
            assert response.status_code in (200, 201), response.text
            assert response.json()["task_id"] == made[0]
        else:
            assert response.status_code == 409, response.text
