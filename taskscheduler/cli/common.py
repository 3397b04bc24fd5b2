"""What the sub-apps of taskctl share: the connection, common options and how tasks print."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Annotated, Any

import typer
from google.protobuf import duration_pb2, json_format
from google.protobuf.message import Message
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskProgressColumn, TextColumn

from taskscheduler.client import (
    FINISHED,
    Client,
    ClientError,
    RetryPolicy,
    Task,
    TaskStatus,
    status_name,
)
from taskscheduler.core.limits import MAX_PRIORITY, MIN_PRIORITY

out = Console()
err = Console(stderr=True)


Address = Annotated[
    str, typer.Option("--address", envvar="TASKSCHED_ADDRESS", help="The api's gRPC address")
]
Token = Annotated[str, typer.Option("--token", envvar="TASKSCHED_TOKEN", help="Bearer token (JWT)")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON, for scripts")]
QueueName = Annotated[str, typer.Option("--queue", help='The queue (default: "default")')]
Priority = Annotated[
    int | None,
    typer.Option(
        min=MIN_PRIORITY,
        max=MAX_PRIORITY,
        help=f"{MIN_PRIORITY} to {MAX_PRIORITY}, higher first (default: 5)",
    ),
]
ConcurrencyKey = Annotated[
    str, typer.Option(help="Groups tasks under the queue's max-concurrent-per-key")
]
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


def as_dict(message: Message) -> dict[str, Any]:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def parse_payload(payload: str, hint: str = "PAYLOAD") -> dict[str, Any]:
    try:
        values = json.loads(payload)
    except json.JSONDecodeError as error:
        raise typer.BadParameter(f"not JSON: {error}", param_hint=hint) from None
    if not isinstance(values, dict):
        raise typer.BadParameter("must be a JSON object", param_hint=hint)
    return values


def seconds(value: float | None) -> timedelta | None:
    """Seconds from an option; None and 0 (for "none") give None."""
    return timedelta(seconds=value) if value else None


def span(duration: duration_pb2.Duration) -> str:
    return duration.ToJsonString()


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
    origin = [f"queue {escape(task.queue)}", f"priority {task.priority}"]
    if task.concurrency_key:
        origin.append(f"concurrency key {escape(task.concurrency_key)}")
    if task.schedule_id:
        origin.append(f"from schedule {task.schedule_id} (fire {task.fire_time.ToJsonString()})")
    out.print("  " + ", ".join(origin))
    if task.HasField("result"):
        out.print(f"  result: {escape(json_format.MessageToJson(task.result, indent=None))}")
    if task.error:
        out.print(f"  error: {escape(task.error)}")
    for attempt in task.attempts:
        outcome = status_name(attempt.status)
        error = f": {attempt.error_type}: {attempt.error_message}" if attempt.error_type else ""
        out.print(f"  #{attempt.number} {outcome} on {escape(attempt.worker + error)}")


def follow(client: Client, task: Task, as_json: bool) -> Task:
    """Prints each status change until the task ends, with a live progress bar on a terminal
    (JSON: one line per status change and per progress report)."""
    if as_json:
        return _follow_as_json(client, task)
    last = task
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[said]}"),
    )
    with Progress(*columns, console=out) as bars:
        bar = bars.add_task(f"{task.id} {status_name(task.status)}", total=None, said="")
        for event in client.watch(task.id, progress=True):
            if event.HasField("progress"):
                reported = event.progress
                total = reported.total if reported.HasField("total") else None
                said = escape(reported.message)
                bars.update(bar, completed=reported.done, total=total, said=said)
                continue
            last = event.task
            text = f"{task.id} {status_name(event.status)} (attempt {event.attempt})"
            bars.update(bar, description=text)
            bars.console.print(text)
    return last


def _follow_as_json(client: Client, task: Task) -> Task:
    last = task
    for event in client.watch(task.id, progress=True):
        line: dict[str, Any] = {"task_id": task.id, "attempt": event.attempt}
        if event.HasField("progress"):
            line["progress"] = json_format.MessageToDict(
                event.progress, preserving_proto_field_name=True
            )
        else:
            last = event.task
            line["status"] = TaskStatus.Name(event.status)  # as in the task's own JSON
        print(json.dumps(line))
    return last


def follow_to_the_end(client: Client, task: Task, as_json: bool) -> None:
    """Follows the task, shows how it ended, and exits with status 1 unless it succeeded (for
    scripts)."""
    final = follow(client, task, as_json)
    show(final, as_json)
    if final.status in FINISHED and final.status != TaskStatus.TASK_STATUS_SUCCESS:
        raise typer.Exit(1)


def policy_text(policy: RetryPolicy) -> str:
    parts = []
    if policy.max_attempts:
        parts.append(f"max attempts {policy.max_attempts}")
    if policy.HasField("initial_backoff"):
        parts.append(f"initial backoff {span(policy.initial_backoff)}")
    if policy.HasField("max_backoff"):
        parts.append(f"max backoff {span(policy.max_backoff)}")
    if policy.backoff_multiplier:
        parts.append(f"multiplier {policy.backoff_multiplier:g}")
    if policy.HasField("jitter"):
        parts.append("jitter" if policy.jitter else "no jitter")
    return ", ".join(parts)
