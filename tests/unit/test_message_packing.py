"""How the dispatcher's tasks are grouped into broker messages: alone when the queue is idle,
several ids a message when its backlog is deep, in their order, never across queues."""

from __future__ import annotations

import uuid

from taskscheduler.adapters.broker import SPREAD, pack
from taskscheduler.core.ports import TaskMessage


def _messages(count: int, queue: str = "default") -> list[TaskMessage]:
    return [TaskMessage(uuid.uuid4(), 1, None, queue) for _ in range(count)]


def test_a_task_on_an_idle_queue_goes_alone() -> None:
    [message] = _messages(1)
    assert pack([message], most=10, backlog={}) == [[message]]


def test_a_few_tasks_go_one_a_message_so_that_idle_workers_start_at_once() -> None:
    messages = _messages(SPREAD)
    assert pack(messages, most=10, backlog={}) == [[message] for message in messages]


def test_a_deep_backlog_shares_messages_up_to_the_most_in_order() -> None:
    messages = _messages(SPREAD * 20)
    packs = pack(messages, most=10, backlog={})
    assert [len(packed) for packed in packs] == [10] * (SPREAD * 2)
    assert [message for packed in packs for message in packed] == messages


def test_tasks_already_with_the_broker_count_toward_the_depth() -> None:
    messages = _messages(4)
    assert pack(messages, most=10, backlog={"default": 200}) == [messages]
    assert len(pack(messages, most=10, backlog={"other": 200})) == 4


def test_one_id_a_message_when_the_setting_says_so() -> None:
    messages = _messages(100)
    assert pack(messages, most=1, backlog={"default": 500}) == [[m] for m in messages]


def test_queues_never_share_a_message() -> None:
    emails, reports = _messages(40, "emails"), _messages(40, "reports")
    packs = pack(emails + reports, most=10, backlog={})
    assert {len({m.queue for m in packed}) for packed in packs} == {1}
    assert sum(len(packed) for packed in packs) == 80
