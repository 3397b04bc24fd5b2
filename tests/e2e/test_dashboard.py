"""The dashboard in a real browser (Playwright driving Debian's chromium): sign in, watch a task
reach SUCCESS without a reload, open its attempts, cancel another; pause, purge and resume a
queue, and run a cron schedule now from their pages."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from taskscheduler.devstack.stack import Stack
from tests.helpers import rest_wait_for_status

pytestmark = pytest.mark.e2e
ONE_BROKER = True  # the pages, in a browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TENANT = "dashboard"
FLOW_TENANT = "dashboard-flow"  # the queues test's own tenant: the first one counts its tasks


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if CHROMIUM is None:
        pytest.skip("no chromium on this machine: `make test` installs Debian's (apt-get)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


def rest_client(stack: Stack, tenant: str) -> httpx.Client:
    return httpx.Client(
        base_url=f"http://127.0.0.1:{stack.config.gateway_port}",
        headers={"authorization": f"Bearer {stack.token(tenant=tenant)}"},
        timeout=30,
    )


@pytest.fixture
def rest(stack: Stack) -> Iterator[httpx.Client]:
    with rest_client(stack, TENANT) as client:
        yield client


@pytest.fixture
def flow_rest(stack: Stack) -> Iterator[httpx.Client]:
    with rest_client(stack, FLOW_TENANT) as client:
        yield client


def signed_in(browser: Browser, stack: Stack, tenant: str = TENANT) -> Page:
    page = browser.new_page(viewport={"width": 1200, "height": 800})
    page.goto(f"http://127.0.0.1:{stack.config.gateway_port}/dashboard")
    expect(page.locator("h1")).to_have_text("Sign in")  # no cookie yet: sent to sign in
    page.fill("#token", "not-a-token")
    page.click("button[type=submit]")
    expect(page.locator(".error")).to_be_visible()
    page.fill("#token", stack.token(tenant=tenant))
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Tasks")
    page.wait_for_load_state()  # its scripts run: the keyboard's among them
    return page


def test_a_task_reaches_success_live_and_another_is_cancelled(
    browser: Browser, stack: Stack, rest: httpx.Client, tmp_path: Path
) -> None:
    page = signed_in(browser, stack)
    cookie = next(c for c in page.context.cookies() if c["name"] == "taskscheduler_token")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert "token" not in page.url

    task = rest.post(
        "/v1/tasks",
        json={"kind": "demo.fail", "payload": {"fail_times": 1}, "retry_policy": {
            "initial_backoff": 0.5, "jitter": False}},
    ).json()  # fmt: skip
    page.goto(f"http://127.0.0.1:{stack.config.gateway_port}/dashboard/tasks/{task['task_id']}")
    page.evaluate("window.notReloaded = true")
    expect(page.locator("#status")).to_have_text("SUCCESS", timeout=30_000)
    assert page.evaluate("window.notReloaded") is True
    first_attempt = page.locator("#attempts li").first
    first_attempt.locator("summary").click()
    expect(first_attempt.locator("pre")).to_contain_text("DemoFailure")
    shots = Path(os.environ.get("SCREENSHOT_DIR", tmp_path))
    page.screenshot(path=str(shots / "dashboard-task.png"))

    later = rest.post(
        "/v1/tasks", json={"kind": "demo.echo", "run_at": "2100-01-01T00:00:00Z"}
    ).json()
    page.goto(f"http://127.0.0.1:{stack.config.gateway_port}/dashboard/tasks/{later['task_id']}")
    expect(page.locator("#status")).to_have_text("SCHEDULED")
    page.click("#cancel")
    expect(page.locator("#status")).to_have_text("CANCELLED")

    page.goto(f"http://127.0.0.1:{stack.config.gateway_port}/dashboard?status=CANCELLED")
    expect(page.locator(f"a[href='/dashboard/tasks/{later['task_id']}']")).to_be_visible()
    # The counts arrive over SSE (this tenant: one success, one cancel), then the chart draws.
    expect(page.locator("#count-SUCCESS")).to_have_text("1")
    expect(page.locator("#count-CANCELLED")).to_have_text("1")
    expect(page.locator("#succeeded")).to_have_attribute("points", re.compile(r"\d"))
    page.goto(f"http://127.0.0.1:{stack.config.gateway_port}/dashboard")
    expect(page.locator("#count-CANCELLED")).to_have_text("1")
    page.screenshot(path=str(shots / "dashboard.png"))


def test_queues_and_schedules_are_run_from_their_pages(
    browser: Browser, stack: Stack, flow_rest: httpx.Client, tmp_path: Path
) -> None:
    base = f"http://127.0.0.1:{stack.config.gateway_port}"
    made = flow_rest.post(
        "/v1/queues",
        json={"name": "reports", "rate_limit": {"per_second": 5, "burst": 10},
              "max_concurrent": 3, "max_concurrent_per_key": 1},
    )  # fmt: skip
    assert made.status_code == 201, made.text
    schedule = flow_rest.post(
        "/v1/schedules",
        json={"cron": "0 9 * * *", "time_zone": "Europe/Paris", "overlap": "ALLOW",
              "description": "Morning report", "task": {"kind": "demo.echo", "queue": "reports",
              "priority": 7, "concurrency_key": "customer-1", "payload": {"report": "daily"}}},
    ).json()  # fmt: skip
    page = signed_in(browser, stack, tenant=FLOW_TENANT)
    queue_row = page.locator("#queue-reports")
    schedule_row = page.locator(f"#schedule-{schedule['schedule_id']}")

    # Queues: every queue with its limits; pause one, then see it PAUSED.
    page.get_by_role("navigation").get_by_role("link", name="Queues").click()
    expect(page.locator("h1")).to_have_text("Queues")
    expect(page.locator("nav a[aria-current=page]")).to_have_text("Queues")
    expect(page.locator("#queue-default")).to_be_visible()
    expect(queue_row.locator(".state")).to_have_text("RUNNING")
    expect(queue_row.locator(".rate")).to_have_text("5/s, burst 10")
    expect(queue_row.locator(".max-concurrent")).to_have_text("3")
    expect(queue_row.locator(".per-key")).to_have_text("1")
    queue_row.locator("button.pause").click()
    expect(queue_row.locator(".state")).to_have_text("PAUSED")
    expect(queue_row.locator("button.resume")).to_be_visible()

    # Schedules: its row, then Run now shows the task it made (waiting: its queue is paused).
    page.get_by_role("navigation").get_by_role("link", name="Schedules").click()
    expect(page.locator("h1")).to_have_text("Schedules")
    expect(schedule_row.locator(".schedule")).to_contain_text("Morning report")
    expect(schedule_row.locator(".cron")).to_have_text("0 9 * * *")
    expect(schedule_row.locator(".zone")).to_have_text("Europe/Paris")
    expect(schedule_row.locator(".kind")).to_have_text("demo.echo")
    expect(schedule_row.locator(".queue")).to_have_text("reports")
    expect(schedule_row.locator(".overlap")).to_have_text("ALLOW")
    expect(schedule_row.locator(".state")).to_have_text("ACTIVE")
    expect(schedule_row.locator(".next-fires li")).to_have_count(5)
    nine_in_paris = re.compile(r"09:00:00 CES?T$")  # in the schedule's time zone
    expect(schedule_row.locator(".next-fires li").first).to_have_text(nine_in_paris)
    expect(schedule_row.locator(".last-fire")).to_have_text("never")
    schedule_row.locator("button.run-now").click()
    expect(page).to_have_url(re.compile(r"/dashboard/tasks/[0-9a-f-]{36}$"))
    task_id = page.url.rsplit("/", 1)[1]
    expect(page.locator("h1")).to_contain_text("demo.echo")
    expect(page.locator("#queue")).to_have_text("reports")
    expect(page.locator("#priority")).to_have_text("7")
    expect(page.locator("#concurrency-key")).to_have_text("customer-1")
    expect(page.locator("#schedule")).to_contain_text(schedule["schedule_id"])
    expect(page.locator("#fire-time time")).to_have_attribute("datetime", re.compile(r"^\d{4}-"))
    expect(page.locator("#status")).to_have_text("PENDING")  # its queue is paused

    # The schedule's last fire links to that task; its task list holds it alone.
    page.goto(f"{base}/dashboard/schedules")
    expect(schedule_row.locator("a.last-task")).to_have_attribute(
        "href", f"/dashboard/tasks/{task_id}"
    )
    schedule_row.locator("a.tasks").click()
    expect(page.locator("#schedule-filter")).to_contain_text(schedule["schedule_id"])
    expect(page.locator("table.tasks tbody tr")).to_have_count(1)
    expect(page.locator(f"a[href='/dashboard/tasks/{task_id}']")).to_be_visible()

    # Back on the queues: the paused queue holds the task; its link lists the queue's tasks.
    page.get_by_role("navigation").get_by_role("link", name="Queues").click()
    expect(queue_row.locator(".waiting")).to_have_text("1")
    shots = Path(os.environ.get("SCREENSHOT_DIR", tmp_path))
    page.screenshot(path=str(shots / "dashboard-queues.png"))
    queue_row.locator("a.tasks").click()
    expect(page.locator("form.filters input[name=queue]")).to_have_value("reports")
    expect(page.locator(f"a[href='/dashboard/tasks/{task_id}']")).to_be_visible()

    # Purge asks first; keeping the tasks changes nothing, purging cancels the waiting one.
    page.goto(f"{base}/dashboard/queues")
    queue_row.locator("button.purge").click()
    expect(page.locator("h1")).to_have_text("Purge reports?")
    expect(page.locator("#waiting")).to_have_text("1")
    page.click("#keep")
    expect(queue_row.locator(".waiting")).to_have_text("1")
    queue_row.locator("button.purge").click()
    page.click("#purge")
    expect(page.locator("#purged")).to_have_text("Purged reports: 1 waiting task cancelled.")
    expect(queue_row.locator(".waiting")).to_have_text("0")
    assert flow_rest.get(f"/v1/tasks/{task_id}").json()["status"] == "CANCELLED"

    # Resume: RUNNING again, and the next run of the schedule goes through.
    queue_row.locator("button.resume").click()
    expect(queue_row.locator(".state")).to_have_text("RUNNING")
    page.goto(f"{base}/dashboard/schedules")
    schedule_row.locator("button.pause").click()
    expect(schedule_row.locator(".state")).to_have_text("PAUSED")
    expect(schedule_row.locator(".next-fires")).to_have_text("none while paused")
    schedule_row.locator("button.run-now").click()  # paused or not
    expect(page.locator("#status")).to_have_text("SUCCESS", timeout=30_000)
    page.goto(f"{base}/dashboard/schedules")
    schedule_row.locator("button.resume").click()
    expect(schedule_row.locator(".state")).to_have_text("ACTIVE")


WORKFLOW_TENANT = "dashboard-workflows"


def test_a_workflow_graph_colors_live_and_draws_spawned_steps(
    browser: Browser, stack: Stack, tmp_path: Path
) -> None:
    base = f"http://127.0.0.1:{stack.config.gateway_port}"
    nap = {"kind": "demo.sleep", "payload": {"seconds": 0.5}}
    soon = (datetime.now(UTC) + timedelta(seconds=4)).isoformat()
    body = {
        "name": "graph",
        "steps": [
            {"name": "wait", "task": {"kind": "demo.echo"}, "run_at": soon},
            {"name": "split", "task": {"kind": "demo.fanout", "payload": {"parts": 3}},
             "depends_on": ["wait"]},
            {"name": "left", "task": nap, "depends_on": ["split"]},
            {"name": "right", "task": nap, "depends_on": ["split"]},
            {"name": "join", "task": {"kind": "demo.gather"}, "depends_on": ["left", "right"]},
        ],
    }  # fmt: skip
    with rest_client(stack, WORKFLOW_TENANT) as rest:
        created = rest.post("/v1/workflows", json=body)
    assert created.status_code == 201, created.text
    workflow = created.json()
    page = signed_in(browser, stack, tenant=WORKFLOW_TENANT)
    page.get_by_role("navigation").get_by_role("link", name="Workflows").click()
    expect(page.locator("h1")).to_have_text("Workflows")
    page.click(f"a[href='/dashboard/workflows/{workflow['workflow_id']}']")
    # Drawn while the first step waits for its run_at: five steps, five edges.
    expect(page.locator("#graph a.node[data-step='wait']")).to_have_class("node SCHEDULED")
    expect(page.locator("#graph a.node[data-step='join']")).to_have_class("node BLOCKED")
    expect(page.locator("#graph a.node")).to_have_count(5)
    expect(page.locator("#graph line.edge")).to_have_count(5)
    # Live: each step turns SUCCESS, and the four split spawns appear with their edges.
    expect(page.locator("#workflow-status")).to_have_text("SUCCESS", timeout=30_000)
    expect(page.locator("#graph a.node")).to_have_count(5 + 3 + 1, timeout=10_000)
    expect(page.locator("#graph a.node.SUCCESS")).to_have_count(9)
    expect(page.locator("#graph line.edge")).to_have_count(5 + 3 + 4)  # and 4 spawned-by
    expect(page.locator("#graph line.edge.spawned")).to_have_count(4)
    expect(page.locator("#finish-time")).not_to_be_empty()
    expect(page.locator("#graph a.node[data-step='split/gather']")).to_be_visible()
    shots = Path(os.environ.get("SCREENSHOT_DIR", tmp_path))
    page.screenshot(path=str(shots / "dashboard-workflow.png"), full_page=True)
    page.click("#graph a.node[data-step='join']")
    expect(page.locator("#workflow")).to_have_text("step join")
    expect(page.locator("#depends-on a")).to_have_count(2)
    page.goto(f"{base}/dashboard?workflow_id={workflow['workflow_id']}")
    expect(page.locator("#workflow-filter")).to_be_visible()


def test_the_workers_page_shows_the_fleet_and_its_running_tasks_live(
    browser: Browser, stack: Stack, rest: httpx.Client, tmp_path: Path
) -> None:
    page = signed_in(browser, stack)
    page.click("nav >> text=Workers")
    expect(page.locator("h1")).to_have_text("Workers")
    expect(page.locator("tr.main .state.ONLINE").first).to_be_visible()
    expect(page.locator("tr.pool .state.ONLINE").first).to_be_visible()
    task = rest.post("/v1/tasks", json={"kind": "demo.sleep", "payload": {"seconds": 4}}).json()
    short = task["task_id"][:8]
    # No reload: the listing comes again over SSE with the task on its pool process.
    expect(page.locator(f"tr.pool td.running a:has-text('{short}')")).to_be_visible(timeout=15_000)
    shots = Path(os.environ.get("SCREENSHOT_DIR", tmp_path))
    page.screenshot(path=str(shots / "dashboard-workers.png"))
    page.click(f"tr.pool td.running a:has-text('{short}')")
    expect(page.locator("dl.task")).to_be_visible()
    worker = page.locator("#attempts a.worker").first
    name = worker.inner_text()
    worker.click()
    expect(page.locator("h1")).to_have_text("Workers")
    expect(page.locator(f"tr[id='worker-{name}']")).to_be_visible()


def test_a_task_page_draws_its_progress_bar_moving(
    browser: Browser, stack: Stack, rest: httpx.Client, tmp_path: Path
) -> None:
    page = signed_in(browser, stack)
    task = rest.post("/v1/tasks", json={"kind": "demo.sleep", "payload": {"seconds": 3}}).json()
    page.goto(f"http://127.0.0.1:{stack.config.gateway_port}/dashboard/tasks/{task['task_id']}")
    bar = page.locator("#progress-bar")

    def value() -> float:
        return float(bar.evaluate("element => element.value"))

    expect(bar).to_be_visible(timeout=15_000)
    expect(bar).to_have_attribute("max", "3")
    page.wait_for_function("document.getElementById('progress-bar').value > 0.5")
    seen = value()
    page.wait_for_function(f"document.getElementById('progress-bar').value > {seen}")
    shots = Path(os.environ.get("SCREENSHOT_DIR", tmp_path))
    page.screenshot(path=str(shots / "dashboard-progress.png"))
    expect(page.locator("#status")).to_have_text("SUCCESS", timeout=15_000)
    assert value() == 3
    expect(page.locator("#progress-text")).to_contain_text("3 / 3 · done")


def test_a_task_page_says_why_the_task_waits(
    browser: Browser, stack: Stack, rest: httpx.Client
) -> None:
    page = signed_in(browser, stack)
    later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    task = rest.post("/v1/tasks", json={"kind": "demo.echo", "run_at": later}).json()
    page.goto(f"http://127.0.0.1:{stack.config.gateway_port}/dashboard/tasks/{task['task_id']}")
    expect(page.locator("#reasons li.reason")).to_have_count(1)
    expect(page.locator("#reasons li.reason")).to_have_attribute("data-code", "NOT_DUE")
    page.click("#cancel")
    expect(page.locator("#status")).to_have_text("CANCELLED")
    expect(page.locator("#reasons li.none")).to_have_text("It has finished.")


def test_bulk_retry_and_cancel_with_their_confirmation(
    browser: Browser, stack: Stack, rest: httpx.Client, tmp_path: Path
) -> None:
    queue = f"bulk-{datetime.now(UTC).strftime('%H%M%S%f')}"
    assert rest.post("/v1/queues", json={"name": queue}).status_code == 201
    later = {"kind": "demo.echo", "queue": queue, "run_at": "2099-01-01T00:00:00+00:00"}
    created = rest.post("/v1/tasks:batchCreate", json={"requests": [later] * 4}).json()["tasks"]
    ids = [task["task_id"] for task in created]
    rest.post("/v1/tasks:batchCancel", json={"task_ids": ids[:3]})
    page = signed_in(browser, stack)
    base = f"http://127.0.0.1:{stack.config.gateway_port}/dashboard"
    page.goto(f"{base}?queue={queue}&status=CANCELLED")
    page.check("#all-matching")
    page.click("#bulk-retry")
    expect(page.locator("h1")).to_have_text("Retry 3 tasks?")
    shots = Path(os.environ.get("SCREENSHOT_DIR", tmp_path))
    page.screenshot(path=str(shots / "dashboard-bulk.png"))
    page.click("#confirm")
    expect(page.locator("#bulk-done")).to_contain_text("Retried 3 tasks")
    page.goto(f"{base}?queue={queue}&status=SCHEDULED")
    page.check("#select-page")
    page.click("#bulk-cancel")
    expect(page.locator("h1")).to_have_text("Cancel 1 task?")
    page.click("#confirm")
    expect(page.locator("#bulk-done")).to_contain_text("Cancelled 1 task")
    assert rest.get(f"/v1/tasks/{ids[3]}").json()["status"] == "CANCELLED"


def test_search_by_the_start_of_a_task_id(
    browser: Browser, stack: Stack, rest: httpx.Client
) -> None:
    task = rest.post("/v1/tasks", json={"kind": "demo.echo"}).json()
    page = signed_in(browser, stack)
    page.fill("#search", task["task_id"][:8])
    page.press("#search", "Enter")
    rows = page.locator("table.tasks tbody tr")
    expect(rows.first).to_contain_text(task["task_id"])
    for text in rows.all_inner_texts():
        assert task["task_id"][:8] in text
    page.fill("#search", task["task_id"])
    page.press("#search", "Enter")
    expect(page.locator("dl.task")).to_have_attribute("data-task-id", task["task_id"])


def test_search_by_payload_field_and_act_on_what_it_finds(
    browser: Browser, stack: Stack, rest: httpx.Client
) -> None:
    customer = f"c-{datetime.now(UTC).strftime('%H%M%S%f')}"
    later = {"kind": "demo.echo", "run_at": "2099-01-01T00:00:00+00:00"}
    theirs = [{**later, "payload": {"customer": {"id": customer}, "n": n}} for n in range(3)]
    others = [{**later, "payload": {"customer": {"id": "someone else"}}}] * 2
    created = rest.post("/v1/tasks:batchCreate", json={"requests": theirs + others}).json()
    ids = [task["task_id"] for task in created["tasks"]]
    page = signed_in(browser, stack)
    page.fill("#search", f"customer.id={customer}")
    page.press("#search", "Enter")
    rows = page.locator("table.tasks tbody tr")
    expect(rows).to_have_count(3)
    listed = page.locator("table.tasks tbody td:nth-child(2) a").all_inner_texts()
    assert sorted(listed) == sorted(ids[:3])
    page.fill("#search", f'{{"customer": {{"id": "{customer}"}}, "n": 1}}')
    page.press("#search", "Enter")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(ids[1])
    page.fill("#search", f"customer.id={customer}")
    page.press("#search", "Enter")
    page.check("#all-matching")  # every task the search matches: those three, no other
    page.click("#bulk-cancel")
    expect(page.locator("h1")).to_have_text("Cancel 3 tasks?")
    page.click("#confirm")
    expect(page.locator("#bulk-done")).to_contain_text("Cancelled 3 tasks")
    statuses = [rest.get(f"/v1/tasks/{task_id}").json()["status"] for task_id in ids]
    assert statuses == ["CANCELLED"] * 3 + ["SCHEDULED"] * 2
    page.fill("#search", "customer.id={unclosed")
    page.press("#search", "Enter")
    expect(page.locator("h1")).to_have_text("Tasks")  # not JSON: searched as text, nothing found
    page.fill("#search", '{"customer": ')
    page.press("#search", "Enter")
    expect(page.locator("main")).to_contain_text("search: is not JSON")


def test_failures_grouped_by_error_type_retried_by_group_and_activity_charts(
    browser: Browser, stack: Stack, tmp_path: Path
) -> None:
    tenant = f"dashboard-failures-{datetime.now(UTC).strftime('%H%M%S%f')}"
    once = {"kind": "demo.fail", "retry_policy": {"max_attempts": 1}}
    requests = [
        *[{**once, "payload": {"message": "card declined"}}] * 3,
        *[{**once, "payload": {"message": "no such user", "retryable": False}}] * 2,
        *[{"kind": "demo.echo"}] * 4,
    ]
    with rest_client(stack, tenant) as rest:
        created = rest.post("/v1/tasks:batchCreate", json={"requests": requests}).json()["tasks"]
        for task, wanted in zip(created, ["FAILED"] * 5 + ["SUCCESS"] * 4, strict=True):
            rest_wait_for_status(rest, task["task_id"], wanted)
    page = signed_in(browser, stack, tenant)
    page.keyboard.press("6")  # the sixth section: Failures
    expect(page.locator("h1")).to_have_text("Failures")
    groups = page.locator("table.failures tbody tr")
    expect(groups).to_have_count(2)
    expect(groups.nth(0)).to_contain_text("taskscheduler.handlers.demo.DemoFailure")
    expect(groups.nth(0).locator("td.number")).to_have_text("3")
    expect(groups.nth(1)).to_contain_text("taskscheduler.core.kinds.NonRetryableError")
    expect(groups.nth(1)).to_contain_text("no such user (attempt 1)")
    shots = Path(os.environ.get("SCREENSHOT_DIR", tmp_path))
    page.screenshot(path=str(shots / "dashboard-failures.png"))

    groups.nth(0).locator("a.error-type").click()
    expect(page.locator("#error-type-filter")).to_contain_text("DemoFailure")
    expect(page.locator("table.tasks tbody tr")).to_have_count(3)
    page.go_back()
    groups.nth(0).locator("button.retry-group").click()
    expect(page.locator("h1")).to_have_text("Retry 3 tasks?")
    page.click("#confirm")
    expect(page.locator("#bulk-done")).to_contain_text("Retried 3 tasks")

    page.keyboard.press("7")  # Activity
    expect(page.locator("h1")).to_have_text("Activity")
    chart = page.locator("section.queue-activity#queue-default")
    # The three copies fail as well (5 + 3); the charts follow without a reload.
    expect(chart.locator(".total.failed")).to_have_text("8", timeout=30_000)
    expect(chart.locator(".total.succeeded")).to_have_text("4")
    expect(chart.locator("rect.failed")).not_to_have_count(0)
    expect(chart.locator("polyline.p50")).to_have_attribute("points", re.compile(r"\d"))
    page.screenshot(path=str(shots / "dashboard-activity.png"), full_page=True)
    with rest_client(stack, tenant) as rest:
        rest.post("/v1/tasks", json={"kind": "demo.echo"})
    expect(chart.locator(".total.succeeded")).to_have_text("5", timeout=30_000)


def test_the_keyboard_moves_through_rows_and_opens_them(
    browser: Browser, stack: Stack, rest: httpx.Client
) -> None:
    task = rest.post("/v1/tasks", json={"kind": "demo.echo"}).json()
    page = signed_in(browser, stack)
    page.keyboard.press("?")
    expect(page.locator("dialog#keys")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("dialog#keys")).to_be_hidden()
    page.keyboard.press("/")
    expect(page.locator("#search")).to_be_focused()
    page.keyboard.type(task["task_id"][:13])
    page.keyboard.press("Enter")
    page.locator("#search").blur()
    page.keyboard.press("j")
    expect(page.locator("table.tasks tbody tr.current")).to_contain_text(task["task_id"])
    page.keyboard.press("x")
    expect(page.locator("tr.current input[name=task_id]")).to_be_checked()
    page.keyboard.press("o")
    expect(page.locator("dl.task")).to_have_attribute("data-task-id", task["task_id"])
    page.keyboard.press("5")
    expect(page.locator("h1")).to_have_text("Workers")
