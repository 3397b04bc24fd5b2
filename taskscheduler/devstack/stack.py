"""The whole service as `make run` starts it: servers, migrations, every process, prefixed logs."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

from taskscheduler.devstack.embedded import (
    EmbeddedPostgres,
    EmbeddedRabbitMQ,
    EmbeddedRedis,
    free_port,
    wait_for_port,
)
from taskscheduler.tokens import ALL_SCOPES, development_secret, mint_token

DATABASE_NAME = "taskscheduler"
DEVELOPMENT_TENANT = "dev"
COLORS = ("\033[36m", "\033[35m", "\033[33m", "\033[32m", "\033[34m")
RESET = "\033[0m"
METRICS_PORTS = ("api_metrics_port", "worker_metrics_port", "dispatcher_metrics_port")
PORTS = (
    "grpc_port",
    "gateway_port",
    "postgres_port",
    "redis_port",
    "rabbitmq_port",
    *METRICS_PORTS,
)


class Broker(StrEnum):
    """The Celery broker of a stack: Redis (REDIS_URL's) or RabbitMQ."""

    REDIS = "redis"
    RABBITMQ = "rabbitmq"


def port_variable(port: str) -> str:
    """The environment variable that sets one of StackConfig's ports (the processes' own name
    for it, where they read it): TASKSCHED_GRPC_PORT, TASKSCHED_POSTGRES_PORT, ..."""
    return f"TASKSCHED_{port.upper()}"


@dataclass
class StackConfig:
    data_dir: Path
    grpc_port: int = 50051
    gateway_port: int = 8000
    postgres_port: int = 55432
    redis_port: int = 56379
    rabbitmq_port: int = 55672
    api_metrics_port: int = 9101
    worker_metrics_port: int = 9102
    dispatcher_metrics_port: int = 9103
    worker_concurrency: int = 2
    # Each of these on its one port, to use the cores of the machine (one process: 1).
    api_processes: int = 2
    gateway_processes: int = 2
    database_url: str | None = None  # None: start the embedded PostgreSQL
    redis_url: str | None = None  # None: start the embedded Redis
    broker: Broker = Broker.REDIS
    broker_url: str | None = None  # RabbitMQ's, None: start an embedded node (broker RABBITMQ)
    extra_env: dict[str, str] = field(default_factory=dict)
    log_stream: IO[str] = sys.stdout


def on_free_ports(data_dir: Path, **settings: Any) -> StackConfig:
    """A stack beside any other on this machine: every port picked free (tests, benchmarks)."""
    ports = {name: free_port() for name in PORTS}
    return StackConfig(data_dir=data_dir, **(ports | settings))


def _kill_group(popen: subprocess.Popen[str], timeout: float = 10) -> None:
    """SIGKILLs a process and everything it started (its group), and returns once none of them
    is left: a child that still held a port would take the connections meant for the next."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(popen.pid, signal.SIGKILL)
    popen.wait()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(popen.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.01)


@dataclass
class Process:
    name: str
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)  # over the stack's environment
    popen: subprocess.Popen[str] | None = None


class Stack:
    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.postgres: EmbeddedPostgres | None = None
        self.redis: EmbeddedRedis | None = None
        self.rabbitmq: EmbeddedRabbitMQ | None = None
        self.processes: list[Process] = []
        self._log_lock = threading.Lock()
        self.database_url = config.database_url or ""
        self.redis_url = config.redis_url or ""
        self.broker_url = config.broker_url or ""  # empty: Redis is the broker
        self.jwt_secret = os.environ.get("TASKSCHED_JWT_SECRET") or development_secret(
            config.data_dir
        )

    def token(self, tenant: str = DEVELOPMENT_TENANT, scopes: Sequence[str] = ALL_SCOPES) -> str:
        """A bearer token for this stack (HS256 with its secret), valid for a day."""
        return mint_token(self.jwt_secret, tenant, scopes, ttl_seconds=86_400)

    def start(self) -> None:
        """Servers, migrations, then every process; returns once the api and gateway listen."""
        self.start_servers()
        self.migrate()
        self.start_processes()
        self.wait_ready()

    # -- servers -----------------------------------------------------------------------------

    def start_servers(self) -> None:
        data = self.config.data_dir
        if not self.database_url:
            self.postgres = EmbeddedPostgres(data / "postgres", self.config.postgres_port)
            self.log("stack", f"starting embedded PostgreSQL on port {self.config.postgres_port}")
            self.postgres.start()
            self.postgres.create_database(DATABASE_NAME)
            self.database_url = self.postgres.url(DATABASE_NAME)
        if not self.redis_url:
            self.redis = EmbeddedRedis(data / "redis", self.config.redis_port)
            self.log("stack", f"starting embedded Redis on port {self.config.redis_port}")
            self.redis.start()
            self.redis_url = self.redis.url
        if self.config.broker is Broker.RABBITMQ and not self.broker_url:
            self.rabbitmq = EmbeddedRabbitMQ(data / "rabbitmq", self.config.rabbitmq_port)
            self.log("stack", f"starting embedded RabbitMQ on port {self.config.rabbitmq_port}")
            self.rabbitmq.start()
            self.broker_url = self.rabbitmq.url

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            DATABASE_URL=self.database_url,
            REDIS_URL=self.redis_url,
            BROKER_URL=self.broker_url,
            TASKSCHED_GRPC_PORT=str(self.config.grpc_port),
            TASKSCHED_GATEWAY_PORT=str(self.config.gateway_port),
            TASKSCHED_API_ADDRESS=f"127.0.0.1:{self.config.grpc_port}",
            TASKSCHED_API_PROCESSES=str(self.config.api_processes),
            TASKSCHED_GATEWAY_PROCESSES=str(self.config.gateway_processes),
            TASKSCHED_JWT_SECRET=self.jwt_secret,
            PYTHONUNBUFFERED="1",
        )
        env.update({port_variable(name): str(getattr(self.config, name)) for name in METRICS_PORTS})
        env.update(self.config.extra_env)
        return env

    def migrate(self) -> None:
        self.run_once("migrate", [sys.executable, "-m", "taskscheduler.adapters.postgres.migrate"])

    # -- processes ---------------------------------------------------------------------------

    def worker_command(self, hostname: str) -> list[str]:
        return [
            sys.executable, "-m", "celery", "-A", "services.worker.app", "worker",
            "--loglevel", "INFO", "--pool", "prefork",
            "--concurrency", str(self.config.worker_concurrency),
            "--hostname", hostname, "--without-mingle", "--without-gossip",
        ]  # fmt: skip

    def planned_processes(self) -> list[Process]:
        """The processes to run, each with its command and its own environment variables."""
        python = sys.executable
        return [
            Process("api", [python, "-m", "services.api"]),
            Process("gateway", [python, "-m", "gateway"]),
            Process("dispatcher", [python, "-m", "services.dispatcher"]),
            Process("worker", self.worker_command("worker1@%h")),
        ]

    def start_processes(self) -> None:
        for index, process in enumerate(self.planned_processes()):
            self._spawn(process, index)
            self.processes.append(process)

    def restart_process(self, name: str) -> None:
        """Starts the named process again (after it exited or was killed)."""
        for index, process in enumerate(self.processes):
            if process.name == name:
                if process.popen is not None:
                    _kill_group(process.popen)
                self._spawn(process, index)

    def pid_of(self, name: str) -> int:
        for process in self.processes:
            if process.name == name and process.popen is not None:
                return process.popen.pid
        raise KeyError(name)

    def _spawn(self, process: Process, index: int) -> None:
        process.popen = subprocess.Popen(
            process.command,
            env=self.environment() | process.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            start_new_session=True,  # Ctrl-C reaches the launcher only; it stops the others
        )
        threading.Thread(
            target=self._pump, args=(process.name, index, process.popen.stdout), daemon=True
        ).start()

    def wait_ready(self, timeout: float = 60) -> None:
        wait_for_port(self.config.grpc_port, timeout)
        wait_for_port(self.config.gateway_port, timeout)

    def run_once(self, name: str, command: list[str]) -> None:
        result = subprocess.run(
            command, env=self.environment(), capture_output=True, text=True, check=False
        )
        for line in (result.stdout + result.stderr).splitlines():
            self.log(name, line)
        if result.returncode != 0:
            raise RuntimeError(f"{name} failed with exit code {result.returncode}")

    def exited(self) -> list[Process]:
        return [p for p in self.processes if p.popen is not None and p.popen.poll() is not None]

    def stop(self, timeout: float = 20) -> None:
        for process in self.processes:
            if process.popen is not None and process.popen.poll() is None:
                process.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in self.processes:
            if process.popen is None:
                continue
            try:
                process.popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.log("stack", f"{process.name} did not stop in time; killing it")
                os.killpg(process.popen.pid, signal.SIGKILL)
                process.popen.wait()
        self.processes.clear()
        if self.rabbitmq is not None:
            self.rabbitmq.stop()
        if self.redis is not None:
            self.redis.stop()
        if self.postgres is not None:
            self.postgres.stop()

    # -- logs --------------------------------------------------------------------------------

    def log(self, name: str, line: str, index: int = -1) -> None:
        color = COLORS[index % len(COLORS)] if index >= 0 else ""
        with self._log_lock:
            self.config.log_stream.write(f"{color}{name:>10} |{RESET if color else ''} {line}\n")
            self.config.log_stream.flush()

    def _pump(self, name: str, index: int, stream: IO[str] | None) -> None:
        if stream is None:
            return
        for line in stream:
            self.log(name, line.rstrip("\n"), index)
