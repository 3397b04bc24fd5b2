"""The fleet of worker processes: what each one registers and heartbeats, and the use case that
lists them with the tasks each runs."""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection

from taskscheduler.core.errors import StorageUnavailable
from taskscheduler.core.model import (
    READ_SCOPE,
    Caller,
    Worker,
    WorkerRegistration,
    WorkerState,
)
from taskscheduler.core.permissions import require
from taskscheduler.core.ports import WorkerRegistry, WorkerRepository

log = logging.getLogger("taskscheduler.worker")


class WorkerManager:
    """Lists the fleet: every tenant sees every worker, and the ids of its own tasks only."""

    def __init__(self, repository: WorkerRepository) -> None:
        self._repository = repository

    async def list(self, caller: Caller, states: Collection[WorkerState] = ()) -> list[Worker]:
        """Every worker process, or those in one of `states`."""
        require(caller, READ_SCOPE)
        workers = await self._repository.list(caller.tenant)
        return [worker for worker in workers if not states or worker.state in states]


class Heartbeat:
    """Registers a worker process and beats every `heartbeat_seconds` on a daemon thread of its
    own, so that a busy handler never delays it; `stop` marks the process STOPPED. A beat the
    database refuses is logged and the next one tries again (registering afresh if the row was
    forgotten meanwhile)."""

    def __init__(self, registry: WorkerRegistry, registration: WorkerRegistration) -> None:
        self._registry = registry
        self._registration = registration
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def name(self) -> str:
        return self._registration.name

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="worker-heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=self._registration.heartbeat_seconds)
        try:
            self._registry.stopped(self._registration.name)
        except StorageUnavailable as exc:
            log.warning("worker %s not marked stopped: %s", self.name, exc)

    def _run(self) -> None:
        registered = False
        while not self._stopping.is_set():
            try:
                if registered:
                    registered = self._registry.beat(self._registration.name)
                if not registered:
                    self._registry.register(self._registration)
                    registered = True
            except StorageUnavailable as exc:
                log.warning("worker %s heartbeat failed: %s", self.name, exc)
            except Exception:  # the thread must live on: the next beat tries again
                log.exception("worker %s heartbeat failed", self.name)
            self._stopping.wait(self._registration.heartbeat_seconds)
