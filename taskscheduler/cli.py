"""`taskctl`: the TaskService from a terminal (typer + rich), over the Python SDK.

taskctl schedule demo.sleep '{"seconds": 1}' --watch
taskctl list --status FAILED --json
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from itertools import islice
from typing import Annotated, Any

import typer
from google.protobuf import json_format
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from taskscheduler.client import FINISHED, Client, ClientError, Task, TaskStatus, status_name
from taskscheduler.tokens import ALL_SCOPES, configured_secret, mint_token

app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False)
out = Console()
err = Console(stderr=True)

Address = Annotated[
    str, typer.Option("--address", envvar="TASKSCHED_ADDRESS", help="The api's gRPC address")
]
Token = Annotated[str, typer.Option("--token", envvar="TASKSCHED_TOKEN", help="Bearer token (JWT)")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON, for scripts")]
DEFAULT_ADDRESS = "127.0.0.1:50051"
COLORS = {"SUCCESS": "green", "FAILED": "red", "CANCELLED": "yellow", "RUNNING": "cyan"}


@contextmanager
def connected(address: str, token: str) -> Iterator[Client]:
    """A client; a failed call prints its error and exits with status 1."""
    try:
        with Client(address, token=token or None) as client:
            yield client
    except ClientError as error:
        field = f" (field: {error.field})" if error.field else ""
        err.print(f"[red]{error.code.name}[/red]: {escape(error.details)}{escape(field)}")
        raise typer.Exit(1) from None


def as_dict(task: Task) -> dict[str, Any]:
    return json_format.MessageToDict(task, preserving_proto_field_name=True)


def show(task: Task, as_json: bool) -> None:
    if as_json:
        print(json.dumps(as_dict(task)))
        return
    status = status_name(task.status)
    kind = escape(task.kind)
    out.print(f"[bold]{task.id}[/bold]  {kind}  [{COLORS.get(status, 'white')}]{status}[/]")
    out.print(
        f"  attempt {task.attempt} of {task.max_attempts}, run at {task.run_at.ToJsonString()}"
    )
    if task.HasField("result"):
        out.print(f"  result: {escape(json_format.MessageToJson(task.result, indent=None))}")
    if task.error:
        out.print(f"  error: {escape(task.error)}")
    for attempt in task.attempts:
        outcome = status_name(attempt.status)
        error = f": {attempt.error_type}: {attempt.error_message}" if attempt.error_type else ""
        out.print(f"  #{attempt.number} {outcome} on {escape(attempt.worker + error)}")


def follow(client: Client, task: Task, as_json: bool) -> Task:
    """Prints each status change (a live status line on a terminal) until the task ends."""
    last = task
    with out.status(f"{task.id} {status_name(task.status)}") as line:
        for event in client.watch(task.id):
            last = event.task
            text = f"{task.id} {status_name(event.status)} (attempt {event.attempt})"
            if as_json:
                status = TaskStatus.Name(event.status)  # as in the task's own JSON
                print(json.dumps({"task_id": task.id, "status": status, "attempt": event.attempt}))
            else:
                line.update(text)
                out.print(text)
    return last


def follow_to_the_end(client: Client, task: Task, as_json: bool) -> None:
    """Follows the task, shows how it ended, and exits with status 1 unless it succeeded (for
    scripts)."""
    final = follow(client, task, as_json)
    show(final, as_json)
    if final.status in FINISHED and final.status != TaskStatus.TASK_STATUS_SUCCESS:
        raise typer.Exit(1)


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
    watch: Annotated[bool, typer.Option("--watch", help="Follow it until it ends")] = False,
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Schedule a task."""
    try:
        values = json.loads(payload)
    except json.JSONDecodeError as error:
        raise typer.BadParameter(f"not JSON: {error}", param_hint="PAYLOAD") from None
    if not isinstance(values, dict):
        raise typer.BadParameter("must be a JSON object", param_hint="PAYLOAD")
    with connected(address, token) as client:
        task = client.schedule(
            kind,
            values,
            run_at=run_at,
            timeout=timedelta(seconds=timeout) if timeout else None,
            max_attempts=max_attempts,
            request_id=request_id,
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
        tasks = list(islice(client.list(kind=kind, statuses=statuses), limit))
    if as_json:
        print(json.dumps([as_dict(task) for task in tasks]))
        return
    table = Table("id", "kind", "status", "attempt", "created")
    for task in tasks:
        name = status_name(task.status)
        table.add_row(
            task.id,
            escape(task.kind),
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
def token(
    tenant: Annotated[str, typer.Option(help="The tenant claim")] = "dev",
    scope: Annotated[list[str] | None, typer.Option(help="Repeat; default: read and write")] = None,
    ttl: Annotated[float, typer.Option(help="Seconds the token is valid")] = 86_400,
) -> None:
    """Mint a development token (TASKSCHED_JWT_SECRET, or the secret of `make run`)."""
    if not os.environ.get("TASKSCHED_JWT_SECRET"):
        err.print("signed with the development secret of `make run` (.data/jwt_secret)")
    print(mint_token(configured_secret(), tenant, scope or ALL_SCOPES, ttl))


def main() -> None:
    app(prog_name="taskctl")


if __name__ == "__main__":
    main()
