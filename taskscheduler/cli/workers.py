"""`taskctl workers`: the worker processes, their state and the tasks each runs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Annotated

import typer
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
from taskscheduler.client import Worker, WorkerState, worker_state_name

app = typer.Typer()

STATE_COLORS = {"ONLINE": "green", "LOST": "red", "STOPPED": "dim"}


@app.command("workers")
def list_workers(
    state: Annotated[
        list[str] | None, typer.Option(help="Only these states (repeat): ONLINE, LOST, STOPPED")
    ] = None,
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """List the worker processes: each Celery worker's main process, then its pool processes."""
    try:
        states = [WorkerState.Value(f"WORKER_STATE_{name.upper()}") for name in state or []]
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--state") from None
    with connected(address, token) as client:
        workers = client.list_workers(states=states)
    if as_json:
        print(json.dumps([as_dict(worker) for worker in workers]))
        return
    out.print(workers_table(workers))


def workers_table(workers: Sequence[Worker]) -> Table:
    table = Table("name", "state", "celery worker", "queues", "slots", "running", "last beat")
    for worker in workers:
        name = worker_state_name(worker.state)
        table.add_row(
            worker.name if not worker.parent else f"  └ {worker.name}",
            f"[{STATE_COLORS.get(name, 'white')}]{name}[/]",
            worker.celery_hostname,
            ", ".join(worker.queues) or "(all)",
            str(worker.concurrency),
            "\n".join(worker.running_task_ids),
            worker.heartbeat_time.ToJsonString(),
        )
    return table
