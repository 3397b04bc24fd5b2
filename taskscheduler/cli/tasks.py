"""taskctl's task commands, at its top level: schedule, get, list, cancel, retry, watch, explain,
token."""

from __future__ import annotations

import json
import os
from datetime import datetime
from itertools import islice
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from taskscheduler.cli.common import (
    COLORS,
    DEFAULT_ADDRESS,
    Address,
    AsJson,
    ConcurrencyKey,
    Priority,
    QueueName,
    Token,
    as_dict,
    connected,
    err,
    follow_to_the_end,
    out,
    parse_payload,
    seconds,
    show,
)
from taskscheduler.client import (
    FINISHED,
    TaskStatus,
    WaitReasonCode,
    status_name,
)

app = typer.Typer()


@app.command()
def schedule(
    kind: Annotated[str, typer.Argument(help="The task's kind, e.g. demo.sleep")],
    payload: Annotated[str, typer.Argument(help="The payload, a JSON object")] = "{}",
    run_at: Annotated[
        datetime | None, typer.Option(help="When to run it (ISO 8601, with an offset)")
    ] = None,
    timeout: Annotated[float | None, typer.Option(help="Seconds one attempt may run")] = None,
    max_attempts: Annotated[int | None, typer.Option(help="Attempts in all")] = None,
    request_id: Annotated[str | None, typer.Option(help="Idempotency key")] = None,
    queue: QueueName = "",
    priority: Priority = None,
    concurrency_key: ConcurrencyKey = "",
    watch: Annotated[bool, typer.Option("--watch", help="Follow it until it ends")] = False,
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Schedule a task."""
    values = parse_payload(payload)
    with connected(address, token) as client:
        task = client.schedule(
            kind,
            values,
            run_at=run_at,
            timeout=seconds(timeout),
            max_attempts=max_attempts,
            request_id=request_id,
            queue=queue,
            priority=priority,
            concurrency_key=concurrency_key,
        )
        show(task, as_json)
        if watch:
            follow_to_the_end(client, task, as_json)


@app.command()
def get(
    task_id: str, address: Address = DEFAULT_ADDRESS, token: Token = "", as_json: AsJson = False
) -> None:
    """Show a task with its attempts."""
    with connected(address, token) as client:
        show(client.get(task_id), as_json)


@app.command("list")
def list_tasks(
    kind: Annotated[str, typer.Option(help="Only this kind")] = "",
    status: Annotated[
        list[str] | None, typer.Option(help="Only these statuses (repeat), e.g. FAILED")
    ] = None,
    queue: Annotated[str, typer.Option(help="Only tasks of this queue")] = "",
    schedule_id: Annotated[
        str, typer.Option("--schedule", help="Only tasks made by this schedule (its id)")
    ] = "",
    limit: Annotated[int, typer.Option(help="At most this many tasks")] = 50,
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """List tasks, newest first."""
    try:
        statuses = [TaskStatus.Value(f"TASK_STATUS_{name.upper()}") for name in status or []]
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--status") from None
    with connected(address, token) as client:
        found = client.list(kind=kind, statuses=statuses, queue=queue, schedule_id=schedule_id)
        tasks = list(islice(found, limit))
    if as_json:
        print(json.dumps([as_dict(task) for task in tasks]))
        return
    table = Table("id", "kind", "queue", "status", "attempt", "created")
    for task in tasks:
        name = status_name(task.status)
        table.add_row(
            task.id,
            escape(task.kind),
            escape(task.queue),
            f"[{COLORS.get(name, 'white')}]{name}[/]",
            f"{task.attempt}/{task.max_attempts}",
            task.create_time.ToJsonString(),
        )
    out.print(table)


@app.command()
def cancel(
    task_id: str, address: Address = DEFAULT_ADDRESS, token: Token = "", as_json: AsJson = False
) -> None:
    """Cancel a waiting task, or ask a running one to stop."""
    with connected(address, token) as client:
        show(client.cancel(task_id), as_json)


@app.command()
def retry(
    task_id: str,
    watch: Annotated[bool, typer.Option("--watch", help="Follow the copy until it ends")] = False,
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Schedule a copy of a finished task (same kind, payload and retry policy)."""
    with connected(address, token) as client:
        copy = client.retry(task_id)
        show(copy, as_json)
        if watch:
            follow_to_the_end(client, copy, as_json)


@app.command()
def watch(
    task_id: str, address: Address = DEFAULT_ADDRESS, token: Token = "", as_json: AsJson = False
) -> None:
    """Follow a task until it ends (exit status 1 unless it succeeded)."""
    with connected(address, token) as client:
        follow_to_the_end(client, client.get(task_id), as_json)


@app.command()
def explain(
    task_id: str, address: Address = DEFAULT_ADDRESS, token: Token = "", as_json: AsJson = False
) -> None:
    """Why a task has not started: what holds it back now, the first reason first."""
    with connected(address, token) as client:
        explained = client.explain(task_id)
    if as_json:
        print(json.dumps(as_dict(explained)))
        return
    status = status_name(explained.status)
    out.print(f"[bold]{explained.task_id}[/bold]  [{COLORS.get(status, 'white')}]{status}[/]")
    if explained.worker:
        lease = explained.lease_expire_time.ToJsonString()
        out.print(f"  running on {escape(explained.worker)}, lease until {lease}")
    for reason in explained.reasons:
        code = WaitReasonCode.Name(reason.code).removeprefix("WAIT_REASON_CODE_")
        until = f" (until {reason.until.ToJsonString()})" if reason.HasField("until") else ""
        out.print(f"  [yellow]{code}[/]: {escape(reason.message)}{until}")
        for dependency in reason.task_ids:
            out.print(f"    waits for {dependency}")
    if not explained.reasons and not explained.worker:
        out.print("  finished" if explained.status in FINISHED else "  nothing holds it back")


@app.command()
def token(
    tenant: Annotated[str, typer.Option(help="The tenant claim")] = "dev",
    scope: Annotated[list[str] | None, typer.Option(help="Repeat; default: read and write")] = None,
    ttl: Annotated[float, typer.Option(help="Seconds the token is valid")] = 86_400,
) -> None:
    """Mint a development token (TASKSCHED_JWT_SECRET, or the secret of `make run`)."""
    try:  # the server's code, imported here: the rest of taskctl needs only the SDK
        from taskscheduler.tokens import ALL_SCOPES, configured_secret, mint_token
    except ImportError:
        err.print("minting tokens needs the server distribution: pip install taskscheduler-server")
        raise typer.Exit(1) from None
    if not os.environ.get("TASKSCHED_JWT_SECRET"):
        err.print("signed with the development secret of `make run` (.data/jwt_secret)")
    print(mint_token(configured_secret(), tenant, scope or ALL_SCOPES, ttl))
