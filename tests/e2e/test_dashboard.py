"""The dashboard in a real browser (Playwright driving Debian's chromium): sign in, watch a task
reach SUCCESS without a reload, open its attempts, cancel another."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from taskscheduler.devstack.stack import Stack

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TENANT = "dashboard"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if CHROMIUM is None:
        pytest.skip("no chromium on this machine: `make test` installs Debian's (apt-get)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def rest(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=f"http://127.0.0.1:{stack.config.gateway_port}",
        headers={"authorization": f"Bearer {stack.token(tenant=TENANT)}"},
        timeout=30,
    ) as client:
        yield client


def signed_in(browser: Browser, stack: Stack) -> Page:
    page = browser.new_page(viewport={"width": 1200, "height": 800})
    page.goto(f"http://127.0.0.1:{stack.config.gateway_port}/dashboard")
    expect(page.locator("h1")).to_have_text("Sign in")  # no cookie yet: sent to sign in
    page.fill("#token", "not-a-token")
    page.click("button[type=submit]")
    expect(page.locator(".error")).to_be_visible()
    page.fill("#token", stack.token(tenant=TENANT))
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Tasks")
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
