"""`taskctl failures` and `taskctl activity`: the dead letters by error type, and each queue's
last hour."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from taskscheduler.cli.common import (
    DEFAULT_ADDRESS,
    Address,
    AsJson,
    Token,
    as_dict,
    connected,
    out,
)

app = typer.Typer()

SPARKS = " ▁▂▃▄▅▆▇█"


@app.command()
def failures(
    kind: Annotated[str, typer.Option(help="Only tasks of this kind")] = "",
    queue: Annotated[str, typer.Option(help="Only tasks of this queue")] = "",
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """The FAILED tasks grouped by their last attempt's error type, most failures first; retry
    a group with `taskctl retry --status FAILED --error-type TYPE`."""
    with connected(address, token) as client:
        groups = client.failure_groups(kind=kind, queue=queue)
    if as_json:
        print(json.dumps([as_dict(group) for group in groups]))
        return
    table = Table("count", "error type", "last failed", "latest message", "latest task")
    for group in groups:
        table.add_row(
            str(group.count),
            escape(group.error_type or "(none)"),
            group.last_finish_time.ToJsonString(),
            escape(group.latest_message[:80]),
            group.latest_task_id,
        )
    out.print(table)


@app.command()
def activity(
    queue: Annotated[str, typer.Option(help="Only this queue")] = "",
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Each queue's last hour: tasks succeeded and failed, minute by minute, and the median
    wait for a worker over the hour's busiest minute."""
    with connected(address, token) as client:
        queues = client.activity(queue=queue)
    if as_json:
        print(json.dumps([as_dict(item) for item in queues]))
        return
    table = Table("queue", "succeeded", "failed", "per minute (last hour)", "worst p95 wait")
    for item in queues:
        done = [minute.succeeded + minute.failed for minute in item.minutes]
        waits = [m.wait_p95.ToTimedelta().total_seconds() for m in item.minutes if m.started]
        table.add_row(
            escape(item.queue),
            str(sum(minute.succeeded for minute in item.minutes)),
            str(sum(minute.failed for minute in item.minutes)),
            sparkline(done),
            f"{max(waits):.2f}s" if waits else "-",
        )
    out.print(table)


def sparkline(values: list[int]) -> str:
    """One character per value, its height relative to the largest."""
    top = max(values, default=0)
    if not top:
        return SPARKS[0] * len(values)
    return "".join(SPARKS[round(value / top * (len(SPARKS) - 1))] for value in values)
