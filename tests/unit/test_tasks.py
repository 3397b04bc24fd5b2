"""Validation of schedule requests and page tokens, before anything reaches storage."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from taskscheduler.core import paging
from taskscheduler.core.errors import InvalidArgument
from taskscheduler.core.kinds import KindRegistry, PayloadModel, TaskContext, load_handler_modules
from taskscheduler.core.model import (
    Caller,
    NewTask,
    PageCursor,
    QueueSettings,
    ResourcePosition,
    RetryPolicy,
    RetryPolicyOverride,
    TaskFilter,
)
from taskscheduler.core.model import TaskStatus as S
from taskscheduler.core.tasks import ScheduleRequest, TaskManager, parse_task_id

NOW = datetime(2026, 1, 1, tzinfo=UTC)
CALLER = Caller("tenant-a", frozenset({"tasks:read", "tasks:write"}))


@pytest.fixture
def manager() -> TaskManager:
    return manager_with(load_handler_modules(), RetryPolicy())


def manager_with(kinds: KindRegistry, default_policy: RetryPolicy) -> TaskManager:
    unused: Any = None  # prepare() touches neither storage nor broker
    return TaskManager(unused, unused, unused, kinds, default_policy)


def prepare(manager: TaskManager, request: ScheduleRequest) -> NewTask:
    return manager.prepare(CALLER, request, NOW, QueueSettings())


def field_of(excinfo: pytest.ExceptionInfo[InvalidArgument]) -> str:
    return excinfo.value.field


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (ScheduleRequest(kind=""), "kind"),
        (ScheduleRequest(kind="no.such.kind"), "kind"),
        (ScheduleRequest(kind="demo.sleep", payload={"seconds": "soon"}), "payload.seconds"),
        (ScheduleRequest(kind="demo.sleep", payload={"seconds": -1}), "payload.seconds"),
        (ScheduleRequest(kind="demo.sleep", payload={"unknown": 1}), "payload.unknown"),
        (ScheduleRequest(kind="demo.fail", payload={"fail_times": 1.5}), "payload.fail_times"),
        (
            ScheduleRequest(kind="demo.echo", retry_policy=RetryPolicyOverride(max_attempts=0)),
            "retry_policy.max_attempts",
        ),
        (
            ScheduleRequest(
                kind="demo.echo",
                retry_policy=RetryPolicyOverride(
                    initial_backoff=timedelta(seconds=10), max_backoff=timedelta(seconds=1)
                ),
            ),
            "retry_policy.max_backoff",
        ),
        (
            ScheduleRequest(
                kind="demo.echo", retry_policy=RetryPolicyOverride(backoff_multiplier=0.5)
            ),
            "retry_policy.backoff_multiplier",
        ),
        (ScheduleRequest(kind="demo.echo", timeout=timedelta(0)), "timeout"),
        (ScheduleRequest(kind="demo.echo", run_at=datetime(2026, 1, 1)), "run_at"),
        (ScheduleRequest(kind="demo.echo", request_id="x" * 201), "request_id"),
    ],
)
def test_a_bad_request_names_its_field(
    manager: TaskManager, request_: ScheduleRequest, field: str
) -> None:
    with pytest.raises(InvalidArgument) as excinfo:
        prepare(manager, request_)
    assert field_of(excinfo) == field


def test_defaults_come_from_the_service_and_run_at_from_now(manager: TaskManager) -> None:
    new = manager.prepare(
        CALLER, ScheduleRequest(kind="demo.sleep", payload={"seconds": 1}), NOW, QueueSettings()
    )
    assert new.status is S.PENDING
    assert new.run_at == NOW
    assert new.retry_policy == RetryPolicy()


def test_a_future_run_at_makes_a_scheduled_task(manager: TaskManager) -> None:
    later = NOW + timedelta(minutes=5)
    new = manager.prepare(
        CALLER, ScheduleRequest(kind="demo.echo", run_at=later), NOW, QueueSettings()
    )
    assert (new.status, new.run_at) == (S.SCHEDULED, later)


def test_a_partial_retry_policy_keeps_the_other_defaults(manager: TaskManager) -> None:
    request = ScheduleRequest(kind="demo.echo", retry_policy=RetryPolicyOverride(max_attempts=7))
    policy = prepare(manager, request).retry_policy
    assert policy.max_attempts == 7
    assert policy.initial_backoff == RetryPolicy().initial_backoff


SERVICE_POLICY = RetryPolicy(  # every field away from RetryPolicy()'s
    max_attempts=4,
    initial_backoff=timedelta(seconds=7),
    max_backoff=timedelta(seconds=90),
    backoff_multiplier=3.0,
    jitter=False,
)


class Empty(PayloadModel):
    pass


def kinds_with_defaults() -> KindRegistry:
    """A kind that sets max_attempts and a timeout, and leaves the rest to the service."""
    kinds = KindRegistry()

    @kinds.register(
        "billing.invoice",
        payload=Empty,
        retry_policy=RetryPolicyOverride(max_attempts=5),
        timeout=timedelta(seconds=30),
    )
    def invoice(payload: Empty, context: TaskContext) -> None:
        pass

    return kinds


def test_a_kinds_policy_sets_its_fields_over_the_services_default() -> None:
    manager = manager_with(kinds_with_defaults(), SERVICE_POLICY)
    new = prepare(manager, ScheduleRequest(kind="billing.invoice"))
    assert new.retry_policy == RetryPolicy(
        max_attempts=5,
        initial_backoff=timedelta(seconds=7),
        max_backoff=timedelta(seconds=90),
        backoff_multiplier=3.0,
        jitter=False,
    )
    assert new.timeout == timedelta(seconds=30)


def test_a_kind_registered_with_a_whole_policy_sets_every_field() -> None:
    kinds = KindRegistry()
    whole = RetryPolicy(max_attempts=2, initial_backoff=timedelta(seconds=3), jitter=True)

    @kinds.register("billing.refund", payload=Empty, retry_policy=whole)
    def refund(payload: Empty, context: TaskContext) -> None:
        pass

    manager = manager_with(kinds, SERVICE_POLICY)
    assert prepare(manager, ScheduleRequest(kind="billing.refund")).retry_policy == whole


def test_the_queue_then_the_task_set_their_fields_over_the_kinds() -> None:
    manager = manager_with(kinds_with_defaults(), SERVICE_POLICY)
    queue = QueueSettings(
        retry_policy=RetryPolicyOverride(max_attempts=6, initial_backoff=timedelta(seconds=2)),
        timeout=timedelta(seconds=20),
    )
    request = ScheduleRequest(
        kind="billing.invoice",
        retry_policy=RetryPolicyOverride(max_attempts=8, backoff_multiplier=1.5),
    )
    new = manager.prepare(CALLER, request, NOW, queue)
    assert new.retry_policy == RetryPolicy(
        max_attempts=8,
        initial_backoff=timedelta(seconds=2),
        max_backoff=timedelta(seconds=90),
        backoff_multiplier=1.5,
        jitter=False,
    )
    assert new.timeout == timedelta(seconds=20)
    task_timeout = ScheduleRequest(kind="billing.invoice", timeout=timedelta(seconds=10))
    assert manager.prepare(CALLER, task_timeout, NOW, queue).timeout == timedelta(seconds=10)


def test_malformed_task_ids_are_invalid_arguments() -> None:
    with pytest.raises(InvalidArgument) as excinfo:
        parse_task_id("not-a-uuid")
    assert field_of(excinfo) == "task_id"


def test_page_tokens_round_trip_and_are_bound_to_their_filter() -> None:
    cursor = PageCursor(NOW, uuid.uuid4())
    only_failed = TaskFilter(statuses=frozenset({S.FAILED}))
    token = paging.encode_page_token(cursor, only_failed)
    assert paging.decode_page_token(token, only_failed) == cursor
    with pytest.raises(InvalidArgument, match="other filters"):
        paging.decode_page_token(token, TaskFilter())
    with pytest.raises(InvalidArgument) as excinfo:
        paging.decode_page_token("garbage!", TaskFilter())
    assert field_of(excinfo) == "page_token"


@pytest.mark.parametrize("size", [-1, 1001])
def test_page_size_is_bounded(size: int) -> None:
    with pytest.raises(InvalidArgument):
        paging.page_size_or_default(size)


@pytest.mark.parametrize(
    ("payload", "field", "reason"),
    [
        ({"blob": "x" * 300_000}, "payload", "PAYLOAD_TOO_LARGE"),
        ({"text": "a\x00b"}, "payload.text", "INVALID_ARGUMENT"),
        ({"k\x00": 1}, "payload", "INVALID_ARGUMENT"),
        ({"list": ["ok", "\x00"]}, "payload.list[1]", "INVALID_ARGUMENT"),
    ],
)
def test_hostile_payloads_are_rejected_naming_the_field(
    manager: TaskManager, payload: dict[str, Any], field: str, reason: str
) -> None:
    with pytest.raises(InvalidArgument) as excinfo:
        manager.prepare(
            CALLER, ScheduleRequest(kind="demo.echo", payload=payload), NOW, QueueSettings()
        )
    assert (excinfo.value.field, excinfo.value.reason) == (field, reason)


def test_deeply_nested_payloads_are_rejected(manager: TaskManager) -> None:
    nested: dict[str, Any] = {}
    inner = nested
    for _ in range(40):
        inner["d"] = {}
        inner = inner["d"]
    with pytest.raises(InvalidArgument, match="deeper than 20"):
        manager.prepare(
            CALLER, ScheduleRequest(kind="demo.echo", payload=nested), NOW, QueueSettings()
        )


def test_nul_characters_in_keys_are_rejected(manager: TaskManager) -> None:
    with pytest.raises(InvalidArgument) as excinfo:
        manager.prepare(
            CALLER, ScheduleRequest(kind="demo.echo", request_id="a\x00b"), NOW, QueueSettings()
        )
    assert excinfo.value.field == "request_id"


@pytest.mark.parametrize(
    "body", [b"garbage", b'{"t": "yesterday", "i": "x"}', b'{"t": 1}', b"[1]", b'{"n": 2}']
)
def test_malformed_page_tokens_of_every_kind_name_page_token(body: bytes) -> None:
    token = base64.urlsafe_b64encode(body).decode()
    for decode in (
        paging.decode_name_token,
        paging.decode_position_token,
        lambda t: paging.decode_page_token(t, TaskFilter()),
    ):
        with pytest.raises(InvalidArgument) as excinfo:
            decode(token)
        assert field_of(excinfo) == "page_token"


def test_position_tokens_round_trip() -> None:
    position = ResourcePosition(NOW, uuid.uuid4())
    assert paging.decode_position_token(paging.encode_position_token(position)) == position
