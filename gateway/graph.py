"""The layout of a workflow's graph for the dashboard: each step in the column of its longest
path from a step without dependencies, the steps of a column one under another, an edge from
each dependency to its dependent. A step spawned at run time (named `<spawning step>/<name>`)
goes right of the step that spawned it, joined by a dashed edge. Drawn as SVG by the template,
no script needed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gateway.schemas.workflows import StepOut

NODE_WIDTH = 180
NODE_HEIGHT = 40
COLUMN_GAP = 60
ROW_GAP = 16
MARGIN = 8


@dataclass(frozen=True)
class Node:
    step: StepOut
    x: int
    y: int


@dataclass(frozen=True)
class Edge:
    """From the right side of a dependency to the left side of its dependent."""

    x1: int
    y1: int
    x2: int
    y2: int
    spawned: bool = False
    """From the step that spawned the dependent, rather than one it waits for."""


@dataclass(frozen=True)
class Graph:
    nodes: list[Node]
    edges: list[Edge]
    width: int
    height: int


def spawner_of(name: str, names: set[str]) -> str | None:
    """The step that spawned the step `name`: the longest other step name it starts with,
    followed by a slash."""
    while "/" in name:
        name = name.rsplit("/", 1)[0]
        if name in names:
            return name
    return None


def _columns(steps: Sequence[StepOut], spawners: dict[str, str]) -> dict[str, int]:
    """Each step's column: 0 without dependencies, else one past its dependencies' and its
    spawner's furthest. Placed in rounds until nothing moves: a spawned step may come before
    its spawner in the api's order (it waits for none of its steps)."""
    column = {step.name: 0 for step in steps}
    for _ in range(len(steps)):
        moved = False
        for step in steps:
            before = [*step.depends_on, *([spawners[step.name]] if step.name in spawners else [])]
            at = max((column[name] + 1 for name in before if name in column), default=0)
            if at != column[step.name]:
                column[step.name], moved = at, True
        if not moved:
            break
    return column


def layout(steps: Sequence[StepOut]) -> Graph:
    names = {step.name for step in steps}
    spawners = {
        step.name: spawner
        for step in steps
        if (spawner := spawner_of(step.name, names)) is not None
    }
    column = _columns(steps, spawners)
    rows: dict[int, int] = {}
    place: dict[str, Node] = {}
    for step in sorted(steps, key=lambda step: column[step.name]):
        at = column[step.name]
        row = rows.get(at, 0)
        rows[at] = row + 1
        x = MARGIN + at * (NODE_WIDTH + COLUMN_GAP)
        y = MARGIN + row * (NODE_HEIGHT + ROW_GAP)
        place[step.name] = Node(step, x, y)
    links = [(name, node, False) for node in place.values() for name in node.step.depends_on]
    links += [(spawner, place[name], True) for name, spawner in spawners.items()]
    edges = [
        Edge(
            place[name].x + NODE_WIDTH,
            place[name].y + NODE_HEIGHT // 2,
            node.x,
            node.y + NODE_HEIGHT // 2,
            spawned,
        )
        for name, node, spawned in links
        if name in place
    ]
    columns = max(column.values(), default=0) + 1
    width = 2 * MARGIN + columns * NODE_WIDTH + (columns - 1) * COLUMN_GAP
    height = 2 * MARGIN + max(rows.values(), default=1) * (NODE_HEIGHT + ROW_GAP) - ROW_GAP
    return Graph(list(place.values()), edges, width, height)
