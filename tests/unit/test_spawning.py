"""context.spawn's checks, before anything is stored: a workflow to spawn into, names unique,
dependencies among the attempt's own spawns, the task checked as ScheduleTask checks it, and at
most MAX_SPAWNED steps an attempt."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta

import pytest

from taskscheduler.core.errors import InvalidArgument
from taskscheduler.core.kinds import load_handler_modules
from taskscheduler.core.limits import MAX_SPAWNED
from taskscheduler.core.model import QueueSettings, RetryPolicy, TaskStatus
from taskscheduler.core.ports import ClaimedAttempt
from taskscheduler.core.spawning import Spawner
from taskscheduler.core.tasks import TaskPreparer

WORKFLOW = uuid.uuid4()


def spawner(workflow_id: uuid.UUID | None = WORKFLOW, queues: tuple[str, ...] = ()) -> Spawner:
    claimed = ClaimedAttempt(
        task_id=uuid.uuid4(),
        kind="demo.fanout",
        payload={},
        attempt=1,
        retry_policy=RetryPolicy(),
        timeout=None,
        tenant="t",
        workflow_id=workflow_id,
        step_name="split",
    )

    def settings(tenant: str, name: str) -> QueueSettings | None:
        return QueueSettings(timeout=timedelta(seconds=9)) if name in queues else None

    return Spawner(claimed, TaskPreparer(load_handler_modules(), RetryPolicy()), settings)


def test_spawned_steps_are_named_under_their_spawner_and_wait_for_their_parents() -> None:
    spawning = spawner(queues=("etl",))
    first = spawning.spawn("demo.echo", {"n": 1})
    second = spawning.spawn("demo.echo", name="two", queue="etl")
    join = spawning.spawn("demo.gather", name="join", depends_on=[first, second])
    one, two, gathered = spawning.spawned
    assert [new.step_name for new in spawning.spawned] == [
        "split/demo.echo-1",
        "split/two",
        "split/join",
    ]
    assert (one.status, one.has_dependents, one.workflow_id) == (TaskStatus.PENDING, True, WORKFLOW)
    assert two.timeout == timedelta(seconds=9)  # the queue's default
    assert (gathered.status, gathered.blocked_on, str(gathered.id)) == (TaskStatus.BLOCKED, 2, join)
    assert gathered.depends_on == (one.id, two.id)


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda s: s.spawn("no.such.kind"), "spawn.kind"),
        (lambda s: s.spawn("demo.sleep", {"seconds": -1}), "spawn.payload.seconds"),
        (lambda s: s.spawn("demo.echo", queue="missing"), "spawn.queue"),
        (lambda s: s.spawn("demo.echo", depends_on=[str(uuid.uuid4())]), "spawn.depends_on[0]"),
        (lambda s: [s.spawn("demo.echo", name="x"), s.spawn("demo.echo", name="x")], "spawn.name"),
        (lambda s: s.spawn("demo.echo", name="n" * 300), "spawn.name"),
    ],
)
def test_a_bad_spawn_is_refused_naming_the_field(
    call: Callable[[Spawner], object], field: str
) -> None:
    spawning = spawner()
    with pytest.raises(InvalidArgument) as refused:
        call(spawning)
    assert refused.value.field == field


def test_only_a_workflow_step_may_spawn() -> None:
    with pytest.raises(InvalidArgument, match="workflow"):
        spawner(workflow_id=None).spawn("demo.echo")


def test_an_attempt_spawns_at_most_max_spawned_steps() -> None:
    spawning = spawner()
    for _ in range(MAX_SPAWNED):
        spawning.spawn("demo.echo")
    with pytest.raises(InvalidArgument, match=str(MAX_SPAWNED)):
        spawning.spawn("demo.echo")
    assert len(spawning.spawned) == MAX_SPAWNED
