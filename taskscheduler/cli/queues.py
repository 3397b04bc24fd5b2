"""`taskctl queues`: a queue's flow control and task defaults."""

from __future__ import annotations

import json
from datetime import timedelta
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
    policy_text,
    seconds,
    span,
)
from taskscheduler.client import (
    Queue,
    QueueChanges,
    QueueState,
    RetryPolicy,
    retry_policy,
)
from taskscheduler.core.limits import QUEUE_NAME_RULE

app = typer.Typer(
    help="Queues: their flow control (pause, rate limit, concurrency) and task defaults.",
    no_args_is_help=True,
)

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


@app.command("list")
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


@app.command("get")
def get_queue(
    name: str, address: Address = DEFAULT_ADDRESS, token: Token = "", as_json: AsJson = False
) -> None:
    """Show a queue with its counts of waiting and running tasks."""
    with connected(address, token) as client:
        show_queue(client.get_queue(name), as_json)


@app.command("create")
def create_queue(
    name: Annotated[str, typer.Argument(help=QUEUE_NAME_RULE)],
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


@app.command("update")
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


@app.command("delete")
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


@app.command("pause")
def pause_queue(
    name: str, address: Address = DEFAULT_ADDRESS, token: Token = "", as_json: AsJson = False
) -> None:
    """Stop the queue's tasks from starting: they wait, PENDING, until resumed."""
    with connected(address, token) as client:
        show_queue(client.pause_queue(name), as_json)


@app.command("resume")
def resume_queue(
    name: str, address: Address = DEFAULT_ADDRESS, token: Token = "", as_json: AsJson = False
) -> None:
    """Let a paused queue's tasks start again."""
    with connected(address, token) as client:
        show_queue(client.resume_queue(name), as_json)


@app.command("purge")
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
