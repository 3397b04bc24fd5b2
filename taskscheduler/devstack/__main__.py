"""`python -m taskscheduler.devstack`: the whole stack in the foreground until Ctrl-C."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from taskscheduler.devstack.stack import DEVELOPMENT_TENANT, Stack, StackConfig


def _port(name: str, default: int) -> int:
    return int(os.environ.get(name, str(default)))


def config_from_env() -> StackConfig:
    """The fixed ports of DESIGN.md by default; each can be moved when it is taken."""
    return StackConfig(
        data_dir=Path(os.environ.get("TASKSCHED_DATA_DIR", ".data")).resolve(),
        grpc_port=_port("TASKSCHED_GRPC_PORT", 50051),
        gateway_port=_port("TASKSCHED_GATEWAY_PORT", 8000),
        postgres_port=_port("TASKSCHED_DEV_POSTGRES_PORT", 55432),
        redis_port=_port("TASKSCHED_DEV_REDIS_PORT", 56379),
        api_metrics_port=_port("TASKSCHED_API_METRICS_PORT", 9101),
        worker_metrics_port=_port("TASKSCHED_WORKER_METRICS_PORT", 9102),
        dispatcher_metrics_port=_port("TASKSCHED_DISPATCHER_METRICS_PORT", 9103),
        database_url=os.environ.get("DATABASE_URL") or None,
        redis_url=os.environ.get("REDIS_URL") or None,
    )


def main() -> int:
    config = config_from_env()
    stack = Stack(config)
    stopping = False

    def request_stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        stack.start()
        gateway = f"http://127.0.0.1:{config.gateway_port}"
        stack.log("stack", f"gRPC TaskService  127.0.0.1:{config.grpc_port}")
        stack.log("stack", f"REST gateway      {gateway}  (Swagger UI: {gateway}/docs)")
        stack.log("stack", f"PostgreSQL        {stack.database_url}")
        stack.log("stack", f"Redis             {stack.redis_url}")
        stack.log(
            "stack",
            f"metrics           {gateway}/metrics, http://127.0.0.1:{config.api_metrics_port}"
            f"/metrics (api), :{config.worker_metrics_port} (worker), "
            f":{config.dispatcher_metrics_port} (dispatcher)",
        )
        token = stack.token()
        stack.log("stack", f"development token (tenant {DEVELOPMENT_TENANT}, a day): {token}")
        stack.log("stack", "more tokens: make token TENANT=acme SCOPES=tasks:read")
        stack.log(
            "stack",
            f'try: curl -X POST {gateway}/run-task/ -H "Authorization: Bearer {token}"'
            "   (Ctrl-C stops everything)",
        )
        while not stopping:
            if dead := stack.exited():
                stack.log("stack", f"{dead[0].name} exited unexpectedly; stopping the stack")
                return 1
            time.sleep(0.2)
        return 0
    finally:
        stack.log("stack", "stopping")
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
