"""Several api processes on one port: a parent starts them (SO_REUSEPORT lets each bind the
gRPC port, the kernel spreads connections over them), serves their summed metrics, passes
SIGTERM on, and ends them all when one of them dies, for its supervisor to start it again; killed
itself, its children die with it."""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
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
    parent = os.getpid()
    children = [
        subprocess.Popen(command, env=environment, preexec_fn=lambda: _end_with_parent(parent))
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
    codes = [_ended(child, settings.grpc_shutdown_grace_seconds + 5) for child in children]
    shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0 if stopping and not any(codes) else 1


def _ended(child: subprocess.Popen[bytes], timeout: float) -> int:
    """Its exit code, once it has drained its calls; killed if it takes longer than that."""
    try:
        return child.wait(timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        return child.wait()


def _end_with_parent(parent: int) -> None:
    """Runs in each child before exec: SIGKILL to it when this process dies without passing a
    signal on (killed itself), so that no orphan keeps serving the port and the api ends as one
    process would (Linux's PR_SET_PDEATHSIG; elsewhere, nothing)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # it died before the request took effect
        os._exit(1)


def _serve_metrics(settings: Settings, metrics_dir: str) -> None:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    from prometheus_client import CollectorRegistry, multiprocess

    from taskscheduler.adapters import metrics

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    metrics.serve(settings.metrics_host, settings.api_metrics_port, registry)
