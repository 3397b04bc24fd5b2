"""The dashboard's overviews: the Failures page (the dead letters grouped by error type, each
group retried in one confirmed action) and the Activity page (each queue's last hour as charts
drawn on the server, live)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import grpc
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sse_starlette import EventSourceResponse

from gateway.calls import Api
from gateway.dashboard import polled, problem_page, render, templates
from gateway.schemas import insights
from taskscheduler.core.limits import MAX_KIND_LENGTH, MAX_QUEUE_NAME_LENGTH
from taskscheduler.v1 import task_service_pb2 as pb

router = APIRouter(prefix="/dashboard", include_in_schema=False)

ACTIVITY_EVERY = 10.0  # seconds between two drawings of the charts sent to a dashboard
WIDTH, HEIGHT = 600, 100  # of a chart's viewBox
SLOT = WIDTH / 60  # one minute's width


@router.get("/failures", response_model=None)
async def failure_groups(
    request: Request,
    api: Api,
    kind: Annotated[str, Query(max_length=MAX_KIND_LENGTH)] = "",
    queue: Annotated[str, Query(max_length=MAX_QUEUE_NAME_LENGTH)] = "",
) -> Response:
    """The FAILED tasks by error type, most failures first, each group with its tasks' list and
    a retry of them all."""
    kind, queue = kind.strip(), queue.strip()
    try:
        grouped = await api.stub.ListFailureGroups(
            pb.ListFailureGroupsRequest(kind=kind, queue=queue),
            timeout=api.deadline,
            metadata=api.metadata,
        )
    except grpc.aio.AioRpcError as error:
        return problem_page(request, error)
    groups = insights.failure_groups_out(grouped).groups
    return render(request, "failures.html", groups=groups, kind=kind, queue=queue)


@dataclass(frozen=True)
class Bar:
    """One minute of a throughput chart: its succeeded part under its failed part."""

    x: float
    succeeded_y: float
    succeeded_height: float
    failed_y: float
    failed_height: float
    title: str


@dataclass(frozen=True)
class Tick:
    """One minute's wait, a short level mark (a lone minute has no line through it)."""

    x1: float
    x2: float
    p50_y: float
    p95_y: float
    title: str


@dataclass(frozen=True)
class Chart:
    """A queue's hour drawn: bars of tasks finished, lines of the wait (p50, p95)."""

    queue: str
    succeeded: int
    failed: int
    started: int
    busiest: int
    bars: list[Bar]
    longest_wait: float
    wait_p50: str
    wait_p95: str
    ticks: list[Tick]


def _height(value: float, top: float) -> float:
    return round(value / top * HEIGHT, 2) if top else 0.0


def _line(values: list[float | None], top: float) -> str:
    """SVG polyline points through the minutes that have a value."""
    return " ".join(
        f"{round((index + 0.5) * SLOT, 2)},{round(HEIGHT - _height(value, top), 2)}"
        for index, value in enumerate(values)
        if value is not None
    )


def chart_of(queue: insights.QueueActivityOut) -> Chart:
    minutes = queue.minutes
    busiest = max((minute.succeeded + minute.failed for minute in minutes), default=0)
    bars = []
    for index, minute in enumerate(minutes):
        ok, failed = _height(minute.succeeded, busiest), _height(minute.failed, busiest)
        when = minute.start_time.strftime("%H:%M") if minute.start_time else ""
        bars.append(
            Bar(
                x=round(index * SLOT + 1, 2),
                succeeded_y=HEIGHT - ok,
                succeeded_height=ok,
                failed_y=HEIGHT - ok - failed,
                failed_height=failed,
                title=f"{when}: {minute.succeeded} succeeded, {minute.failed} failed",
            )
        )
    p95s = [minute.wait_p95_seconds for minute in minutes]
    longest = max((wait for wait in p95s if wait is not None), default=0.0)
    ticks = [
        Tick(
            x1=round(index * SLOT + 1, 2),
            x2=round(index * SLOT + SLOT - 1, 2),
            p50_y=HEIGHT - _height(minute.wait_p50_seconds or 0.0, longest),
            p95_y=HEIGHT - _height(minute.wait_p95_seconds or 0.0, longest),
            title=f"{minute.started} started, waited {minute.wait_p50_seconds or 0:.2f}s "
            f"(p50), {minute.wait_p95_seconds or 0:.2f}s (p95)",
        )
        for index, minute in enumerate(minutes)
        if minute.started and minute.wait_p95_seconds is not None
    ]
    return Chart(
        queue=queue.queue,
        succeeded=sum(minute.succeeded for minute in minutes),
        failed=sum(minute.failed for minute in minutes),
        started=sum(minute.started for minute in minutes),
        busiest=busiest,
        bars=bars,
        longest_wait=longest,
        wait_p50=_line([minute.wait_p50_seconds for minute in minutes], longest),
        wait_p95=_line(p95s, longest),
        ticks=ticks,
    )


async def _charts(api: Api, queue: str) -> list[Chart]:
    answered = await api.stub.GetActivity(
        pb.GetActivityRequest(queue=queue), timeout=api.deadline, metadata=api.metadata
    )
    return [chart_of(item) for item in insights.activity_out(answered).queues]


@router.get("/activity", response_model=None)
async def activity(
    request: Request,
    api: Api,
    queue: Annotated[str, Query(max_length=MAX_QUEUE_NAME_LENGTH)] = "",
) -> Response:
    """Each queue's last hour: tasks finished per minute, and their wait for a worker."""
    queue = queue.strip()
    try:
        charts = await _charts(api, queue)
    except grpc.aio.AioRpcError as error:
        return problem_page(request, error)
    return render(request, "activity.html", charts=charts, queue=queue)


@router.get("/activity/events")
async def activity_events(
    api: Api, queue: Annotated[str, Query(max_length=MAX_QUEUE_NAME_LENGTH)] = ""
) -> EventSourceResponse:
    """Server-Sent Events: the charts, drawn again every ACTIVITY_EVERY seconds (HTML the
    server escaped, as the page's own)."""
    partial = templates.get_template("activity_charts.html")

    async def drawn() -> str:
        return partial.render(charts=await _charts(api, queue.strip()))

    return EventSourceResponse(polled(drawn, "activity", ACTIVITY_EVERY))
