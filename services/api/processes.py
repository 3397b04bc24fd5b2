"""Several api processes on one port: a parent starts them (SO_REUSEPORT lets each bind the
gRPC port, the kernel spreads connections over them), serves their summed metrics, passes
SIGTERM on, and ends them all when one of them dies, for its supervisor to start it again; killed
itself, its children die with it."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from types import FrameType

from taskscheduler.settings import Settings

log = logging.getLogger("taskscheduler.api")

CHILD_POLL_SECONDS = 0.2
PR_SET_PDEATHSIG = 1


def run_processes(settings: Settings) -> int:
    """Runs `settings.api_processes` api processes until a signal or the end of one of them;
    returns the exit code to end with."""
    metrics_dir = tempfile.mkdtemp(prefix="taskscheduler-api-metrics-")
    environment = dict(
        os.environ,
        TASKSCHED_API_PROCESSES="1",
        TASKSCHED_API_METRICS_PORT="0",  # the parent serves what every child counts
        PROMETHEUS_MULTIPROC_DIR=metrics_dir,
    )
    command = [sys.executable, "-m", "services.api"]
    children = [
        subprocess.Popen(command, env=environment, preexec_fn=_end_with_parent)
        for _ in range(settings.api_processes)
    ]
    _serve_metrics(settings, metrics_dir)
    stopping: list[int] = []

    def stop(signum: int, _: FrameType | None) -> None:
        stopping.append(signum)
        for child in children:
            child.send_signal(signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)
    log.info("%d api processes on port %d", len(children), settings.grpc_port)
    while all(child.poll() is None for child in children):
        time.sleep(CHILD_POLL_SECONDS)
    if not stopping:
        ended = next(child for child in children if child.poll() is not None)
        log.error("an api process exited with code %s; stopping the others", ended.returncode)
        stop(signal.SIGTERM, None)
    codes = [child.wait() for child in children]
    return 0 if stopping and not any(codes) else next((c for c in codes if c), 1)


def _end_with_parent() -> None:
    """Runs in each child before exec: SIGKILL to it when this process dies without passing a
    signal on (killed itself), so that no orphan keeps serving the port and the api ends as one
    process would (Linux's PR_SET_PDEATHSIG; elsewhere, nothing)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def _serve_metrics(settings: Settings, metrics_dir: str) -> None:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    from prometheus_client import CollectorRegistry, multiprocess

    from taskscheduler.adapters import metrics

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    metrics.serve(settings.metrics_host, settings.api_metrics_port, registry)
