"""Test servers: the ones named by DATABASE_URL / REDIS_URL, else embedded ones of our own."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from taskscheduler.adapters.postgres.migrate import upgrade
from taskscheduler.devstack.embedded import EmbeddedPostgres, EmbeddedRedis, free_port, new_database
from taskscheduler.settings import Settings


@dataclass
class Servers:
    database_url: str
    redis_url: str
    postgres: EmbeddedPostgres | None
    redis: EmbeddedRedis | None


def fresh_database(server_url: str, migrate: bool = False) -> str:
    """Creates a database of our own on the server, so tests never touch anybody's data."""
    url = new_database(server_url, "taskscheduler_test")
    if migrate:
        upgrade(Settings(database_url=url))
    return url


@contextmanager
def running_servers(data_dir: Path) -> Iterator[Servers]:
    postgres = redis = None
    database_server = os.environ.get("DATABASE_URL")
    redis_url = os.environ.get("REDIS_URL")
    try:
        if not database_server:
            postgres = EmbeddedPostgres(data_dir / "postgres", free_port())
            postgres.start()
            database_server = postgres.url()
        if not redis_url:
            redis = EmbeddedRedis(data_dir / "redis", free_port(), persistent=False)
            redis.start()
            redis_url = redis.url
        database_url = fresh_database(database_server, migrate=True)
        yield Servers(database_url, redis_url, postgres, redis)
    finally:
        if redis is not None:
            redis.stop()
        if postgres is not None:
            postgres.stop()


def settings_for(servers: Servers, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": servers.database_url,
        "redis_url": servers.redis_url,
        "grpc_port": 0,
        "celery_queue": f"test-{uuid.uuid4().hex[:8]}",
        "db_pool_size": 5,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def process_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=settings.database_url,
        REDIS_URL=settings.redis_url,
        BROKER_URL=settings.broker_url or "",  # empty: REDIS_URL's Redis
        TASKSCHED_CELERY_QUEUE=settings.celery_queue,
        TASKSCHED_DISPATCHER_IDLE_POLL_SECONDS=str(settings.dispatcher_idle_poll_seconds),
        TASKSCHED_LEASE_SECONDS=str(settings.lease_seconds),
        TASKSCHED_STOP_GRACE_SECONDS=str(settings.stop_grace_seconds),
        TASKSCHED_REPUBLISH_AFTER_SECONDS=str(settings.republish_after_seconds),
        TASKSCHED_JWT_SECRET=settings.jwt_secret or "",
        TASKSCHED_HANDLER_MODULES=",".join(settings.handler_modules),
        TASKSCHED_WORKER_METRICS_PORT=str(settings.worker_metrics_port),
        TASKSCHED_DISPATCHER_METRICS_PORT=str(settings.dispatcher_metrics_port),
        TASKSCHED_WORKER_QUEUE_WATCH_SECONDS=str(settings.worker_queue_watch_seconds),
        TASKSCHED_WORKER_HEARTBEAT_SECONDS=str(settings.worker_heartbeat_seconds),
        PYTHONUNBUFFERED="1",
    )
    return env


@dataclass
class ServiceProcess:
    popen: subprocess.Popen[str]
    log_path: Path

    def stop(self) -> None:
        self.popen.terminate()
        try:
            self.popen.wait(20)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_worker(settings: Settings, log_dir: Path, concurrency: int = 2) -> ServiceProcess:
    log_path = log_dir / f"worker-{uuid.uuid4().hex[:6]}.log"
    command = [
        sys.executable, "-m", "celery", "-A", "services.worker.app", "worker",
        "--loglevel", "INFO", "--pool", "prefork", "--concurrency", str(concurrency),
        "--hostname", f"test-{uuid.uuid4().hex[:6]}@%h", "--without-mingle", "--without-gossip",
    ]  # fmt: skip
    process = _spawn(command, settings, log_path)
    _wait_for_log(process, " ready.", timeout=60)
    return process


def start_dispatcher(settings: Settings, log_dir: Path) -> ServiceProcess:
    log_path = log_dir / f"dispatcher-{uuid.uuid4().hex[:6]}.log"
    process = _spawn([sys.executable, "-m", "services.dispatcher"], settings, log_path)
    _wait_for_log(process, "dispatcher running", timeout=30)
    return process


def _spawn(command: list[str], settings: Settings, log_path: Path) -> ServiceProcess:
    log_file = log_path.open("w")
    popen = subprocess.Popen(
        command, env=process_env(settings), stdout=log_file, stderr=subprocess.STDOUT, text=True
    )
    return ServiceProcess(popen, log_path)


def _wait_for_log(process: ServiceProcess, marker: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while marker not in process.log():
        if process.popen.poll() is not None:
            raise RuntimeError(f"process exited early:\n{process.log()}")
        if time.monotonic() > deadline:
            process.stop()
            raise TimeoutError(f"{marker!r} not seen in time:\n{process.log()}")
        time.sleep(0.05)
