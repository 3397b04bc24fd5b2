"""`taskctl schedules`: cron schedules and the tasks they make."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated

import typer
from google.protobuf import json_format
from rich.markup import escape
from rich.table import Table

from taskscheduler.cli.common import (
    DEFAULT_ADDRESS,
    Address,
    AsJson,
    ConcurrencyKey,
    Priority,
    QueueName,
    Token,
    as_dict,
    connected,
    follow_to_the_end,
    out,
    parse_payload,
    policy_text,
    seconds,
    show,
    span,
)
from taskscheduler.client import (
    OverlapPolicy,
    Schedule,
    ScheduleChanges,
)
from taskscheduler.core.limits import MAX_PRIORITY, MIN_PRIORITY

app = typer.Typer(
    help="Cron schedules: each makes a task at every fire time.", no_args_is_help=True
)


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


@app.command("list")
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


@app.command("get")
def get_schedule(
    schedule_id: Annotated[str, typer.Argument(metavar="ID")],
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Show a schedule with its next fire times."""
    with connected(address, token) as client:
        show_schedule(client.get_schedule(schedule_id), as_json)


@app.command("create")
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


@app.command("update")
def update_schedule(
    schedule_id: Annotated[str, typer.Argument(metavar="ID")],
    cron: Annotated[str | None, typer.Option(help="A new cron expression")] = None,
    time_zone: Annotated[str | None, typer.Option(help="A new IANA time zone")] = None,
    kind: Annotated[str | None, typer.Option(help="A new kind for its tasks")] = None,
    payload: Annotated[str | None, typer.Option(help="A new payload, a JSON object")] = None,
    queue: Annotated[str | None, typer.Option(help="A new queue for its tasks")] = None,
    priority: Annotated[
        int | None,
        typer.Option(min=MIN_PRIORITY, max=MAX_PRIORITY, help=f"{MIN_PRIORITY} to {MAX_PRIORITY}"),
    ] = None,
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


@app.command("delete")
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


@app.command("pause")
def pause_schedule(
    schedule_id: Annotated[str, typer.Argument(metavar="ID")],
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Stop a schedule from firing."""
    with connected(address, token) as client:
        show_schedule(client.pause_schedule(schedule_id), as_json)


@app.command("resume")
def resume_schedule(
    schedule_id: Annotated[str, typer.Argument(metavar="ID")],
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Let a paused schedule fire again, from its next fire time after now."""
    with connected(address, token) as client:
        show_schedule(client.resume_schedule(schedule_id), as_json)


@app.command("trigger")
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
