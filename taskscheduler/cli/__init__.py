"""`taskctl`: the TaskService from a terminal (typer + rich), over the Python SDK.

taskctl schedule demo.sleep '{"seconds": 1}' --watch
taskctl list --status FAILED --json
taskctl queues create emails --rate-limit 5 --max-concurrent 10
taskctl schedules create '0 3 * * *' demo.echo '{"report": "nightly"}' --time-zone Europe/Paris
taskctl workflows create nightly.json --watch
taskctl workers --state LOST
taskctl failures
taskctl retry --status FAILED --error-type builtins.TimeoutError --yes
"""

import typer

from taskscheduler.cli import insights, queues, schedules, tasks, workers, workflows

app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False)
app.add_typer(tasks.app)
app.add_typer(workers.app)
app.add_typer(insights.app)
app.add_typer(queues.app, name="queues")
app.add_typer(schedules.app, name="schedules")
app.add_typer(workflows.app, name="workflows")


def main() -> None:
    app(prog_name="taskctl")
