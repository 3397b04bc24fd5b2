"""`taskctl`: the TaskService from a terminal (typer + rich), over the Python SDK.

taskctl schedule demo.sleep '{"seconds": 1}' --watch
taskctl list --status FAILED --json
taskctl queues create emails --rate-limit 5 --max-concurrent 10
taskctl schedules create '0 3 * * *' demo.echo '{"report": "nightly"}' --time-zone Europe/Paris
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from enum import StrEnum
from itertools import islice
from typing import Annotated, Any

import typer
from google.protobuf import duration_pb2, json_format
from google.protobuf.message import Message
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from taskscheduler.client import (
    FINISHED,
    Client,
    ClientError,
    OverlapPolicy,
    Queue,
    QueueChanges,
    QueueState,
    RetryPolicy,
    Schedule,
    ScheduleChanges,
    Task,
    TaskStatus,
    retry_policy,
    status_name,
)
from taskscheduler.tokens import ALL_SCOPES, configured_secret, mint_token

app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False)
queues = typer.Typer(
    help="Queues: their flow control (pause, rate limit, concurrency) and task defaults.",
    no_args_is_help=True,
)
schedules = typer.Typer(
    help="Cron schedules: each makes a task at every fire time.", no_args_is_help=True
)
app.add_typer(queues, name="queues")
app.add_typer(schedules, name="schedules")
out = Console()
err = Console(stderr=True)

Address = Annotated[
    str, typer.Option("--address", envvar="TASKSCHED_ADDRESS", help="The api's gRPC address")
]
Token = Annotated[str, typer.Option("--token", envvar="TASKSCHED_TOKEN", help="Bearer token (JWT)")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON, for scripts")]
QueueName = Annotated[str, typer.Option("--queue", help='The queue (default: "default")')]
Priority = Annotated[
    int | None, typer.Option(min=0, max=9, help="0 to 9, higher first (default: 5)")
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
def token(
    tenant: Annotated[str, typer.Option(help="The tenant claim")] = "dev",
    scope: Annotated[list[str] | None, typer.Option(help="Repeat; default: read and write")] = None,
    ttl: Annotated[float, typer.Option(help="Seconds the token is valid")] = 86_400,
) -> None:
    """Mint a development token (TASKSCHED_JWT_SECRET, or the secret of `make run`)."""
    if not os.environ.get("TASKSCHED_JWT_SECRET"):
        err.print("signed with the development secret of `make run` (.data/jwt_secret)")
    print(mint_token(configured_secret(), tenant, scope or ALL_SCOPES, ttl))


# Queues

QUEUE_STATE_COLORS = {"RUNNING": "green", "PAUSED": "yellow"}
RateLimitOption = Annotated[
    float | None, typer.Option("--rate-limit", help="Dispatches per second (0: no limit)")
]
Burst = Annotated[
    int | None, typer.Option(help="Bucket size of the rate limit (default: one second's worth)")
]
MaxConcurrent = Annotated[
    int | None, typer.Option(help="Most tasks dispatched or running at once (0: no limit)")
]
MaxConcurrentPerKey = Annotated[
    int | None, typer.Option(help="Most at once per concurrency key (0: no limit)")
]
MaxAttemptsDefault = Annotated[int | None, typer.Option(help="Task default: attempts in all")]
InitialBackoff = Annotated[
    float | None, typer.Option(help="Task default: seconds before the second attempt")
]
MaxBackoff = Annotated[float | None, typer.Option(help="Task default: longest backoff, seconds")]
BackoffMultiplier = Annotated[
    float | None, typer.Option(help="Task default: backoff factor per failed attempt")
]
Jitter = Annotated[
    bool | None, typer.Option("--jitter/--no-jitter", help="Task default: random backoffs")
]
TimeoutDefault = Annotated[
    float | None, typer.Option("--timeout", help="Task default: seconds an attempt may run")
]


def queue_state(queue: Queue) -> str:
    name = QueueState.Name(queue.state).removeprefix("QUEUE_STATE_")
    return f"[{QUEUE_STATE_COLORS.get(name, 'white')}]{name}[/]"


def rate(queue: Queue) -> str:
    if not queue.HasField("rate_limit"):
        return "none"
    return f"{queue.rate_limit.per_second:g}/s, burst {queue.rate_limit.burst}"


def cap(value: int) -> str:
    return str(value) if value else "none"


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


def show_queue(queue: Queue, as_json: bool) -> None:
    if as_json:
        print(json.dumps(as_dict(queue)))
        return
    out.print(f"[bold]{escape(queue.name)}[/bold]  {queue_state(queue)}")
    out.print(
        f"  rate limit {rate(queue)}; max concurrent {cap(queue.max_concurrent)}, "
        f"per key {cap(queue.max_concurrent_per_key)}"
    )
    out.print(f"  waiting {queue.waiting_count}, running {queue.running_count}")
    defaults = [policy_text(queue.retry_policy)] if queue.HasField("retry_policy") else []
    if queue.HasField("timeout"):
        defaults.append(f"timeout {span(queue.timeout)}")
    if defaults:
        out.print(f"  task defaults: {'; '.join(defaults)}")


def checked_burst(rate_limit: float | None, burst: int | None) -> None:
    if burst is not None and not rate_limit:
        raise typer.BadParameter(
            "needs --rate-limit (the rate limit is set as a whole)", param_hint="--burst"
        )


def retry_options(
    max_attempts: int | None,
    initial_backoff: float | None,
    max_backoff: float | None,
    backoff_multiplier: float | None,
    jitter: bool | None,
) -> RetryPolicy | None:
    """The retry policy of the options given; None when none is (or all say "unset")."""
    policy = retry_policy(
        max_attempts=max_attempts,
        initial_backoff=None if initial_backoff is None else timedelta(seconds=initial_backoff),
        max_backoff=None if max_backoff is None else timedelta(seconds=max_backoff),
        backoff_multiplier=backoff_multiplier,
        jitter=jitter,
    )
    return None if policy == RetryPolicy() else policy


@queues.command("list")
def list_queues(
    address: Address = DEFAULT_ADDRESS, token: Token = "", as_json: AsJson = False
) -> None:
    """List the queues, by name, with their limits and counts."""
    with connected(address, token) as client:
        found = list(client.list_queues())
    if as_json:
        print(json.dumps([as_dict(queue) for queue in found]))
        return
    table = Table("name", "state", "rate limit", "max concurrent", "per key", "waiting", "running")
    for queue in found:
        table.add_row(
            escape(queue.name),
            queue_state(queue),
            rate(queue),
            cap(queue.max_concurrent),
            cap(queue.max_concurrent_per_key),
            str(queue.waiting_count),
            str(queue.running_count),
        )
    out.print(table)


@queues.command("get")
def get_queue(
    name: str, address: Address = DEFAULT_ADDRESS, token: Token = "", as_json: AsJson = False
) -> None:
    """Show a queue with its counts of waiting and running tasks."""
    with connected(address, token) as client:
        show_queue(client.get_queue(name), as_json)


@queues.command("create")
def create_queue(
    name: Annotated[str, typer.Argument(help="1 to 63 lowercase letters, digits, - or _")],
    rate_limit: RateLimitOption = None,
    burst: Burst = None,
    max_concurrent: MaxConcurrent = None,
    max_concurrent_per_key: MaxConcurrentPerKey = None,
    max_attempts: MaxAttemptsDefault = None,
    initial_backoff: InitialBackoff = None,
    max_backoff: MaxBackoff = None,
    backoff_multiplier: BackoffMultiplier = None,
    jitter: Jitter = None,
    timeout: TimeoutDefault = None,
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Create a queue."""
    checked_burst(rate_limit, burst)
    with connected(address, token) as client:
        queue = client.create_queue(
            name,
            rate_limit_per_second=rate_limit or None,
            rate_limit_burst=burst or 0,
            max_concurrent=max_concurrent or 0,
            max_concurrent_per_key=max_concurrent_per_key or 0,
            retry_policy=retry_options(
                max_attempts, initial_backoff, max_backoff, backoff_multiplier, jitter
            ),
            timeout=seconds(timeout),
        )
        show_queue(queue, as_json)


@queues.command("update")
def update_queue(
    name: str,
    rate_limit: RateLimitOption = None,
    burst: Burst = None,
    max_concurrent: MaxConcurrent = None,
    max_concurrent_per_key: MaxConcurrentPerKey = None,
    max_attempts: MaxAttemptsDefault = None,
    initial_backoff: InitialBackoff = None,
    max_backoff: MaxBackoff = None,
    backoff_multiplier: BackoffMultiplier = None,
    jitter: Jitter = None,
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="Task default: seconds (0: none)")
    ] = None,
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Change the settings given, and only those.

    The retry options given replace the queue's retry policy as a whole (--max-attempts 0
    alone removes it); --rate-limit 0 and --timeout 0 remove those."""
    checked_burst(rate_limit, burst)
    changes: QueueChanges = {}
    if rate_limit is not None:
        changes["rate_limit_per_second"] = rate_limit or None
        changes["rate_limit_burst"] = burst or 0
    if max_concurrent is not None:
        changes["max_concurrent"] = max_concurrent
    if max_concurrent_per_key is not None:
        changes["max_concurrent_per_key"] = max_concurrent_per_key
    retry = (max_attempts, initial_backoff, max_backoff, backoff_multiplier, jitter)
    if any(option is not None for option in retry):
        changes["retry_policy"] = retry_options(*retry)
    if timeout is not None:
        changes["timeout"] = seconds(timeout)
    if not changes:
        raise typer.BadParameter("name at least one setting to change")
    with connected(address, token) as client:
        show_queue(client.update_queue(name, **changes), as_json)


@queues.command("delete")
def delete_queue(
    name: str, address: Address = DEFAULT_ADDRESS, token: Token = "", as_json: AsJson = False
) -> None:
    """Delete a queue; none of its tasks may wait or run (purge it first)."""
    with connected(address, token) as client:
        client.delete_queue(name)
    if as_json:
        print(json.dumps({"name": name, "deleted": True}))
    else:
        out.print(f"deleted queue {escape(name)}")


@queues.command("pause")
def pause_queue(
    name: str, address: Address = DEFAULT_ADDRESS, token: Token = "", as_json: AsJson = False
) -> None:
    """Stop the queue's tasks from starting: they wait, PENDING, until resumed."""
    with connected(address, token) as client:
        show_queue(client.pause_queue(name), as_json)


@queues.command("resume")
def resume_queue(
    name: str, address: Address = DEFAULT_ADDRESS, token: Token = "", as_json: AsJson = False
) -> None:
    """Let a paused queue's tasks start again."""
    with connected(address, token) as client:
        show_queue(client.resume_queue(name), as_json)


@queues.command("purge")
def purge_queue(
    name: str,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation")] = False,
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Cancel every waiting task of the queue (running ones go on).

    Waiting: scheduled, pending or retrying. Asks first, unless --yes."""
    if not yes:
        typer.confirm(f"Cancel every waiting task of queue {name}?", abort=True, err=True)
    with connected(address, token) as client:
        cancelled, queue = client.purge_queue(name)
    if as_json:
        print(json.dumps({"cancelled_count": cancelled, "queue": as_dict(queue)}))
        return
    tasks = "task" if cancelled == 1 else "tasks"
    out.print(f"cancelled {cancelled} waiting {tasks} of queue {escape(name)}")
    show_queue(queue, as_json)


# Schedules


class Overlap(StrEnum):
    """What a fire does while an earlier fire's task has not finished."""

    skip = "skip"
    allow = "allow"
    buffer_one = "buffer-one"

    @property
    def policy(self) -> int:
        return OverlapPolicy.Value("OVERLAP_POLICY_" + self.name.upper())


TimeZone = Annotated[str, typer.Option(help='IANA time zone of the cron (default: "UTC")')]
OverlapOption = Annotated[
    Overlap | None,
    typer.Option(case_sensitive=False, help="While the last fire's task runs (default: skip)"),
]
CatchupWindow = Annotated[
    float | None,
    typer.Option(help="Seconds back missed fires are made up (default: the latest, 1 minute)"),
]
Description = Annotated[str | None, typer.Option(help="A note for people")]
TaskTimeout = Annotated[float | None, typer.Option(help="Seconds one attempt may run")]
MaxAttempts = Annotated[int | None, typer.Option(help="Attempts in all")]


def overlap_name(schedule: Schedule) -> str:
    policy = schedule.overlap or OverlapPolicy.OVERLAP_POLICY_SKIP
    return OverlapPolicy.Name(policy).removeprefix("OVERLAP_POLICY_")


def schedule_state(schedule: Schedule) -> str:
    return "[yellow]paused[/]" if schedule.paused else "[green]active[/]"


def show_schedule(schedule: Schedule, as_json: bool) -> None:
    if as_json:
        print(json.dumps(as_dict(schedule)))
        return
    zone = escape(schedule.time_zone or "UTC")
    out.print(
        f"[bold]{schedule.id}[/bold]  {escape(schedule.cron)} ({zone})  {schedule_state(schedule)}"
    )
    if schedule.description:
        out.print(f"  {escape(schedule.description)}")
    task = schedule.task
    payload = (
        json_format.MessageToJson(task.payload, indent=None) if task.HasField("payload") else "{}"
    )
    out.print(f"  task {escape(task.kind)} {escape(payload)}")
    options = [f"queue {escape(task.queue or 'default')}"]
    if task.HasField("priority"):
        options.append(f"priority {task.priority}")
    if task.concurrency_key:
        options.append(f"concurrency key {escape(task.concurrency_key)}")
    if task.HasField("retry_policy"):
        options.append(policy_text(task.retry_policy))
    if task.HasField("timeout"):
        options.append(f"timeout {span(task.timeout)}")
    out.print(f"  {', '.join(options)}")
    window = span(schedule.catchup_window) if schedule.HasField("catchup_window") else "default"
    out.print(f"  overlap {overlap_name(schedule)}, catch-up window {window}")
    if schedule.next_fire_times:
        times = ", ".join(time.ToJsonString() for time in schedule.next_fire_times)
        out.print(f"  next fires: {times}")
    if schedule.HasField("last_fire_time"):
        last = schedule.last_fire_time.ToJsonString()
        out.print(f"  last fire: {last} (task {schedule.last_task_id})")


@schedules.command("list")
def list_schedules(
    address: Address = DEFAULT_ADDRESS, token: Token = "", as_json: AsJson = False
) -> None:
    """List the schedules, oldest first."""
    with connected(address, token) as client:
        found = list(client.list_schedules())
    if as_json:
        print(json.dumps([as_dict(schedule) for schedule in found]))
        return
    table = Table("id", "cron", "time zone", "kind", "queue", "state", "next fire", "last fire")
    for schedule in found:
        table.add_row(
            schedule.id,
            escape(schedule.cron),
            escape(schedule.time_zone or "UTC"),
            escape(schedule.task.kind),
            escape(schedule.task.queue or "default"),
            schedule_state(schedule),
            schedule.next_fire_times[0].ToJsonString() if schedule.next_fire_times else "",
            schedule.last_fire_time.ToJsonString() if schedule.HasField("last_fire_time") else "",
        )
    out.print(table)


@schedules.command("get")
def get_schedule(
    schedule_id: Annotated[str, typer.Argument(metavar="ID")],
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Show a schedule with its next fire times."""
    with connected(address, token) as client:
        show_schedule(client.get_schedule(schedule_id), as_json)


@schedules.command("create")
def create_schedule(
    cron: Annotated[
        str, typer.Argument(help="5 fields (6 with seconds first) or @hourly, @daily, ...")
    ],
    kind: Annotated[str, typer.Argument(help="The kind of the tasks it makes")],
    payload: Annotated[str, typer.Argument(help="Their payload, a JSON object")] = "{}",
    time_zone: TimeZone = "",
    queue: QueueName = "",
    priority: Priority = None,
    concurrency_key: ConcurrencyKey = "",
    max_attempts: MaxAttempts = None,
    timeout: TaskTimeout = None,
    overlap: OverlapOption = None,
    catchup_window: CatchupWindow = None,
    description: Description = None,
    paused: Annotated[bool, typer.Option("--paused", help="Create it paused")] = False,
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Create a schedule that makes a task at each fire time of CRON."""
    values = parse_payload(payload)
    with connected(address, token) as client:
        schedule = client.create_schedule(
            cron,
            kind,
            values,
            time_zone=time_zone,
            queue=queue,
            priority=priority,
            concurrency_key=concurrency_key,
            max_attempts=max_attempts,
            timeout=seconds(timeout),
            overlap=overlap.policy if overlap else OverlapPolicy.OVERLAP_POLICY_UNSPECIFIED,
            catchup_window=seconds(catchup_window),
            description=description or "",
            paused=paused,
        )
        show_schedule(schedule, as_json)


@schedules.command("update")
def update_schedule(
    schedule_id: Annotated[str, typer.Argument(metavar="ID")],
    cron: Annotated[str | None, typer.Option(help="A new cron expression")] = None,
    time_zone: Annotated[str | None, typer.Option(help="A new IANA time zone")] = None,
    kind: Annotated[str | None, typer.Option(help="A new kind for its tasks")] = None,
    payload: Annotated[str | None, typer.Option(help="A new payload, a JSON object")] = None,
    queue: Annotated[str | None, typer.Option(help="A new queue for its tasks")] = None,
    priority: Annotated[int | None, typer.Option(min=0, max=9, help="0 to 9")] = None,
    concurrency_key: Annotated[str | None, typer.Option(help="A new concurrency key")] = None,
    max_attempts: Annotated[int | None, typer.Option(help="Attempts in all (0: default)")] = None,
    timeout: Annotated[float | None, typer.Option(help="Seconds (0: default)")] = None,
    overlap: OverlapOption = None,
    catchup_window: CatchupWindow = None,
    description: Description = None,
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Change the fields given, and only those.

    A new cron or time zone fires from now on. The task options given are changed in the
    schedule's task template (read first, then sent back as a whole)."""
    changes: ScheduleChanges = {}
    if cron is not None:
        changes["cron"] = cron
    if time_zone is not None:
        changes["time_zone"] = time_zone
    if kind is not None:
        changes["kind"] = kind
    if payload is not None:
        changes["payload"] = parse_payload(payload, "--payload")
    if queue is not None:
        changes["queue"] = queue
    if priority is not None:
        changes["priority"] = priority
    if concurrency_key is not None:
        changes["concurrency_key"] = concurrency_key
    if max_attempts is not None:
        changes["max_attempts"] = max_attempts or None
    if timeout is not None:
        changes["timeout"] = seconds(timeout)
    if overlap is not None:
        changes["overlap"] = overlap.policy
    if catchup_window is not None:
        changes["catchup_window"] = seconds(catchup_window)
    if description is not None:
        changes["description"] = description
    if not changes:
        raise typer.BadParameter("name at least one field to change")
    with connected(address, token) as client:
        show_schedule(client.update_schedule(schedule_id, **changes), as_json)


@schedules.command("delete")
def delete_schedule(
    schedule_id: Annotated[str, typer.Argument(metavar="ID")],
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Delete a schedule; the tasks it made stay."""
    with connected(address, token) as client:
        client.delete_schedule(schedule_id)
    if as_json:
        print(json.dumps({"id": schedule_id, "deleted": True}))
    else:
        out.print(f"deleted schedule {schedule_id}")


@schedules.command("pause")
def pause_schedule(
    schedule_id: Annotated[str, typer.Argument(metavar="ID")],
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Stop a schedule from firing."""
    with connected(address, token) as client:
        show_schedule(client.pause_schedule(schedule_id), as_json)


@schedules.command("resume")
def resume_schedule(
    schedule_id: Annotated[str, typer.Argument(metavar="ID")],
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Let a paused schedule fire again, from its next fire time after now."""
    with connected(address, token) as client:
        show_schedule(client.resume_schedule(schedule_id), as_json)


@schedules.command("trigger")
def trigger_schedule(
    schedule_id: Annotated[str, typer.Argument(metavar="ID")],
    watch: Annotated[bool, typer.Option("--watch", help="Follow the task until it ends")] = False,
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Fire a schedule now (paused or not, whatever its overlap policy): show the task."""
    with connected(address, token) as client:
        task = client.trigger_schedule(schedule_id)
        show(task, as_json)
        if watch:
            follow_to_the_end(client, task, as_json)


def main() -> None:
    app(prog_name="taskctl")


if __name__ == "__main__":
    main()
