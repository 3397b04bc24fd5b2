"""`taskctl workflows`: create a workflow from a JSON file, follow, list and cancel it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from google.protobuf import json_format
from rich.markup import escape
from rich.table import Table

from taskscheduler.cli.common import (
    COLORS,
    DEFAULT_ADDRESS,
    Address,
    AsJson,
    Token,
    as_dict,
    connected,
    out,
    parse_payload,
)
from taskscheduler.client import (
    Client,
    FailurePolicy,
    Workflow,
    WorkflowPlan,
    WorkflowStatus,
    WorkflowStep,
    status_name,
    workflow_status_name,
)
from taskscheduler.v1 import task_service_pb2 as pb

app = typer.Typer(
    help="Workflows: steps that wait for the steps they depend on.", no_args_is_help=True
)

WorkflowId = Annotated[str, typer.Argument(metavar="ID")]
DURATIONS = ("timeout",)
POLICY_DURATIONS = ("initial_backoff", "max_backoff")


def _as_duration(value: Any) -> Any:
    """Seconds as the REST body gives them ("30" or 30), as protobuf's JSON wants ("30s")."""
    return f"{value}s" if isinstance(value, int | float) else value


def request_of(body: dict[str, Any]) -> pb.CreateWorkflowRequest:
    """A CreateWorkflowRequest from POST /v1/workflows's body (protobuf's JSON form is taken
    too): `on_failure` as CONTINUE or FAILURE_POLICY_CONTINUE, durations in seconds or "30s"."""
    policy = body.get("on_failure")
    if isinstance(policy, str) and not policy.startswith("FAILURE_POLICY_"):
        body["on_failure"] = "FAILURE_POLICY_" + policy
    for step in body.get("steps") or []:
        task = step.get("task") if isinstance(step, dict) else None
        if not isinstance(task, dict):
            continue
        for name in DURATIONS:
            if name in task:
                task[name] = _as_duration(task[name])
        retry = task.get("retry_policy")
        if not isinstance(retry, dict):
            continue
        for name in POLICY_DURATIONS:
            if name in retry:
                retry[name] = _as_duration(retry[name])
    try:
        return json_format.ParseDict(body, pb.CreateWorkflowRequest())
    except json_format.ParseError as error:
        raise typer.BadParameter(str(error), param_hint="FILE") from None


def _step_line(step: WorkflowStep) -> str:
    status = status_name(step.status)
    after = f"  after {', '.join(map(escape, step.depends_on))}" if step.depends_on else ""
    color = COLORS.get(status, "white")
    return f"  {escape(step.name)}  {escape(step.kind)}  [{color}]{status}[/]{after}"


def show_workflow(workflow: Workflow, as_json: bool) -> None:
    if as_json:
        print(json.dumps(as_dict(workflow)))
        return
    status = workflow_status_name(workflow.status)
    name = f"  {escape(workflow.name)}" if workflow.name else ""
    out.print(f"[bold]{workflow.id}[/bold]{name}  [{COLORS.get(status, 'white')}]{status}[/]")
    out.print(f"  {workflow.step_count} steps, on failure {_policy(workflow)}")
    for step in workflow.steps:
        out.print(_step_line(step))


def _policy(workflow: Workflow) -> str:
    return FailurePolicy.Name(workflow.on_failure).removeprefix("FAILURE_POLICY_")


def follow_workflow(client: Client, workflow_id: str, as_json: bool) -> Workflow:
    """Prints each step's change until the workflow ends; exits with status 1 unless it
    succeeded."""
    final = client.get_workflow(workflow_id)
    for event in client.watch_workflow(workflow_id):
        if event.HasField("workflow"):
            final = event.workflow
        if not event.HasField("step"):
            continue
        if as_json:
            print(json.dumps({"workflow_id": workflow_id, "step": as_dict(event.step)}))
        else:
            out.print(_step_line(event.step))
    show_workflow(final, as_json)
    if workflow_status_name(final.status) != "SUCCESS":
        raise typer.Exit(1)
    return final


@app.command("create")
def create_workflow(
    file: Annotated[
        Path, typer.Argument(metavar="FILE", help="POST /v1/workflows's body, as JSON ('-': stdin)")
    ],
    watch: Annotated[bool, typer.Option("--watch", help="Follow it until it ends")] = False,
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Create a workflow from a JSON file: {"name", "steps": [{"name", "task": {"kind",
    "payload", ...}, "depends_on": [...]}], "on_failure"}."""
    text = typer.get_text_stream("stdin").read() if str(file) == "-" else file.read_text()
    request = request_of(parse_payload(text, hint="FILE"))
    with connected(address, token) as client:
        workflow = client.create_workflow(
            WorkflowPlan(request.steps),
            name=request.name,
            on_failure=request.on_failure,
            request_id=request.request_id or None,
        )
        if watch:
            follow_workflow(client, workflow.id, as_json)
            return
        show_workflow(workflow, as_json)


@app.command("get")
def get_workflow(
    workflow_id: WorkflowId,
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Show a workflow with its steps."""
    with connected(address, token) as client:
        show_workflow(client.get_workflow(workflow_id), as_json)


@app.command("watch")
def watch_workflow(
    workflow_id: WorkflowId,
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Follow a workflow until it ends (exit status 1 unless it succeeded)."""
    with connected(address, token) as client:
        follow_workflow(client, workflow_id, as_json)


@app.command("list")
def list_workflows(
    status: Annotated[
        list[str] | None, typer.Option(help="Only these statuses (repeat), e.g. FAILED")
    ] = None,
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """List the workflows, newest first."""
    try:
        statuses = [
            WorkflowStatus.Value(f"WORKFLOW_STATUS_{name.upper()}") for name in status or []
        ]
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--status") from None
    with connected(address, token) as client:
        found = list(client.list_workflows(statuses=statuses))
    if as_json:
        print(json.dumps([as_dict(workflow) for workflow in found]))
        return
    table = Table("id", "name", "status", "steps", "created", "finished")
    for workflow in found:
        name = workflow_status_name(workflow.status)
        table.add_row(
            workflow.id,
            escape(workflow.name),
            f"[{COLORS.get(name, 'white')}]{name}[/]",
            str(workflow.step_count),
            workflow.create_time.ToJsonString(),
            workflow.finish_time.ToJsonString() if workflow.HasField("finish_time") else "",
        )
    out.print(table)


@app.command("cancel")
def cancel_workflow(
    workflow_id: WorkflowId,
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Cancel every step of a workflow that has not finished."""
    with connected(address, token) as client:
        show_workflow(client.cancel_workflow(workflow_id), as_json)
