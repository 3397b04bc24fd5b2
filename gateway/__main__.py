"""`python -m gateway` starts the REST gateway with uvicorn: one process, or
TASKSCHED_GATEWAY_PROCESSES of them on the one port (uvicorn's workers)."""

from __future__ import annotations

import uvicorn
from fastapi import FastAPI

from gateway.app import create_app
from taskscheduler import logs, tracing
from taskscheduler.settings import get_settings


def configured_app() -> FastAPI:
    """The app as each gateway process builds it (uvicorn calls it in every worker)."""
    settings = get_settings()
    logs.configure(settings.log_format, settings.log_level)
    tracing.configure("taskscheduler-gateway")
    return create_app(settings)


def main() -> None:
    settings = get_settings()
    logs.configure(settings.log_format, settings.log_level)
    several = settings.gateway_processes > 1
    uvicorn.run(
        # Several processes each build the app (uvicorn imports the factory in every worker).
        "gateway.__main__:configured_app" if several else configured_app(),
        factory=several,
        workers=settings.gateway_processes if several else None,
        host=settings.gateway_host,
        port=settings.gateway_port,
        log_config=None,  # uvicorn's lines go through the handler configured above
    )


if __name__ == "__main__":
    main()
