"""`python -m taskscheduler.devstack`: the whole stack in the foreground until Ctrl-C."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from taskscheduler.devstack.stack import (
    DEVELOPMENT_TENANT,
    PORTS,
    Broker,
    Stack,
    StackConfig,
    port_variable,
)


def config_from_env() -> StackConfig:
    """StackConfig's ports by default; each can be moved when it is taken."""
    config = StackConfig(
        data_dir=Path(os.environ.get("TASKSCHED_DATA_DIR", ".data")).resolve(),
        database_url=os.environ.get("DATABASE_URL") or None,
        redis_url=os.environ.get("REDIS_URL") or None,
        broker_url=os.environ.get("BROKER_URL") or None,
    )
    if config.broker_url or os.environ.get("TASKSCHED_STACK_BROKER") == Broker.RABBITMQ:
        config.broker = Broker.RABBITMQ
    for number in (*PORTS, "api_processes", "gateway_processes"):
        if value := os.environ.get(port_variable(number)):
            setattr(config, number, int(value))
    return config


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
        if stack.broker_url:
            stack.log("stack", f"RabbitMQ          {stack.broker_url}")
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
