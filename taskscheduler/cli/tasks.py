"""taskctl's task commands, at its top level: schedule, get, list, cancel, retry, watch, explain,
token."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
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
    BatchCancelTasksResponse,
    BatchRetryTasksResponse,
    Selector,
    TaskStatus,
    WaitReasonCode,
    status_name,
)

app = typer.Typer()

ErrorType = Annotated[
    str,
    typer.Option(
        help="Only tasks whose last attempt ended with this error type (see taskctl failures)"
    ),
]


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
    error_type: ErrorType = "",
    payload: Annotated[
        str,
        typer.Option(
            help='Only tasks whose payload contains this JSON object, e.g. \'{"to": "a@b.c"}\''
        ),
    ] = "",
    limit: Annotated[int, typer.Option(help="At most this many tasks")] = 50,
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """List tasks, newest first."""
    statuses = statuses_of(status)
    contained = parse_payload(payload, "--payload") if payload else None
    with connected(address, token) as client:
        found = client.list(
            kind=kind,
            statuses=statuses,
            queue=queue,
            schedule_id=schedule_id,
            error_type=error_type,
            payload_contains=contained,
        )
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


Since = Annotated[
    str,
    typer.Option(
        help="Only tasks of the last DURATION (30m, 12h, 7d): created then (cancel), "
        "finished then (retry)"
    ),
]
Yes = Annotated[bool, typer.Option("--yes", help="Act without asking (for scripts)")]
Statuses = Annotated[
    list[str] | None, typer.Option("--status", help="Only these statuses (repeat)")
]
Kind = Annotated[str, typer.Option(help="Only tasks of this kind")]
FilterQueue = Annotated[str, typer.Option("--queue", help="Only tasks of this queue")]
TaskIds = Annotated[list[str] | None, typer.Argument(metavar="[TASK_ID]...")]

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


def since_time(since: str) -> datetime:
    """30m, 12h, 7d ... as the time that long ago."""
    number, unit = since[:-1], since[-1:]
    try:
        if unit not in UNITS or float(number) <= 0:
            raise ValueError
        return datetime.now(UTC) - timedelta(seconds=float(number) * UNITS[unit])
    except ValueError:
        raise typer.BadParameter(
            "a number and s, m, h or d: 30m, 12h", param_hint="--since"
        ) from None


def statuses_of(status: list[str] | None) -> list[int]:
    try:
        return [TaskStatus.Value(f"TASK_STATUS_{name.upper()}") for name in status or []]
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--status") from None


def selector(
    status: list[str] | None, kind: str, queue: str, since: str, since_field: str, error_type: str
) -> Selector | None:
    """The bulk filter the options make; None when none is given."""
    if not (status or kind or queue or since or error_type):
        return None
    chosen = Selector(statuses=statuses_of(status), kind=kind, queue=queue, error_type=error_type)
    if since:
        chosen[since_field] = since_time(since)  # type: ignore[literal-required]
    return chosen


def targets(task_ids: list[str] | None, chosen: Selector | None) -> tuple[list[str], Selector]:
    """A bulk action's ids, or its filter: one of the two."""
    if task_ids and chosen is not None:
        raise typer.BadParameter("give task ids or a filter (--status, --kind, ...): not both")
    if not task_ids and chosen is None:
        raise typer.BadParameter(
            "give task ids, or --status, --kind, --queue, --since or --error-type"
        )
    return task_ids or [], chosen or Selector()


@app.command()
def cancel(
    task_ids: TaskIds = None,
    status: Statuses = None,
    kind: Kind = "",
    queue: FilterQueue = "",
    since: Since = "",
    error_type: ErrorType = "",
    yes: Yes = False,
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Cancel a waiting task (or ask a running one to stop); several by id; or every task
    matching --status, --kind, --queue, --since and --error-type (asks first, unless
    --yes)."""
    filtered = selector(status, kind, queue, since, "created_after", error_type)
    with connected(address, token) as client:
        if len(task_ids or []) == 1 and filtered is None:
            show(client.cancel((task_ids or [])[0]), as_json)
            return
        ids, chosen = targets(task_ids, filtered)
        if not yes:
            confirm(client.cancel_many(ids, dry_run=True, **chosen).matched_count, "cancel")
        report(client.cancel_many(ids, **chosen), "cancelled", as_json)


@app.command()
def retry(
    task_ids: TaskIds = None,
    status: Statuses = None,
    kind: Kind = "",
    queue: FilterQueue = "",
    since: Since = "",
    error_type: ErrorType = "",
    yes: Yes = False,
    watch: Annotated[bool, typer.Option("--watch", help="Follow the copy until it ends")] = False,
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Schedule a copy of a finished task (same kind, payload and retry policy); of several by
    id; or of every task matching --status, --kind, --queue, --since and --error-type (asks
    first, unless --yes). Repeated, a bulk retry makes no second copy."""
    filtered = selector(status, kind, queue, since, "finished_after", error_type)
    with connected(address, token) as client:
        if len(task_ids or []) == 1 and filtered is None:
            copy = client.retry((task_ids or [])[0])
            show(copy, as_json)
            if watch:
                follow_to_the_end(client, copy, as_json)
            return
        ids, chosen = targets(task_ids, filtered)
        if not yes:
            confirm(client.retry_many(ids, dry_run=True, **chosen).matched_count, "retry")
        report(client.retry_many(ids, **chosen), "retried", as_json)


def confirm(matched: int, verb: str) -> None:
    if matched == 0:
        out.print("no task matches")
        raise typer.Exit(0)
    if not typer.confirm(f"{verb} {matched} task{'s' if matched != 1 else ''}?", default=False):
        raise typer.Exit(1)


def report(
    response: BatchCancelTasksResponse | BatchRetryTasksResponse, done: str, as_json: bool
) -> None:
    if as_json:
        print(json.dumps(as_dict(response)))
        return
    acted = (
        response.cancelled_count
        if isinstance(response, BatchCancelTasksResponse)
        else (response.retried_count)
    )
    out.print(f"{response.matched_count} matched, {acted} {done}, {response.not_acted_count} not")
    for item in response.not_acted:
        out.print(f"  {item.task_id}: {escape(item.reason)}: {escape(item.message)}")


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
