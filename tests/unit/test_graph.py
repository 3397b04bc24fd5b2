"""The dashboard's layout of a workflow graph: columns by longest path, an edge per dependency."""

from __future__ import annotations

from gateway.graph import COLUMN_GAP, NODE_HEIGHT, NODE_WIDTH, layout
from gateway.schemas.workflows import StepOut


def step(name: str, *depends_on: str) -> StepOut:
    return StepOut(
        name=name,
        task_id=f"id-{name}",
        status="PENDING",
        depends_on=list(depends_on),
        kind="demo.echo",
        start_time=None,
        finish_time=None,
    )


def test_a_diamond_takes_three_columns_with_an_edge_per_dependency() -> None:
    graph = layout([step("a"), step("b", "a"), step("c", "a"), step("d", "b", "c")])
    x = {node.step.name: node.x for node in graph.nodes}
    assert x["b"] == x["c"] == x["a"] + NODE_WIDTH + COLUMN_GAP
    assert x["d"] == x["b"] + NODE_WIDTH + COLUMN_GAP
    assert len(graph.edges) == 4
    assert all(edge.x2 > edge.x1 for edge in graph.edges)  # left to right
    assert graph.width >= x["d"] + NODE_WIDTH
    assert graph.height >= 2 * NODE_HEIGHT  # b and c one under the other


def test_a_step_goes_one_column_past_its_furthest_dependency() -> None:
    graph = layout([step("a"), step("b", "a"), step("c", "b"), step("late", "a", "c")])
    x = {node.step.name: node.x for node in graph.nodes}
    assert x["late"] == x["c"] + NODE_WIDTH + COLUMN_GAP


def test_a_spawned_step_goes_right_of_its_spawner_with_a_dashed_edge() -> None:
    graph = layout([step("split/part-1"), step("split/gather", "split/part-1"), step("split")])
    x = {node.step.name: node.x for node in graph.nodes}
    assert x["split"] < x["split/part-1"] < x["split/gather"]
    assert sorted(edge.spawned for edge in graph.edges) == [False, True, True]
