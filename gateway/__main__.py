"""`python -m gateway` starts the REST gateway with uvicorn."""

from __future__ import annotations

import uvicorn

from gateway.app import create_app
from taskscheduler import logs, tracing
from taskscheduler.settings import get_settings

settings = get_settings()
logs.configure(settings.log_format, settings.log_level)
tracing.configure("taskscheduler-gateway")
uvicorn.run(
    create_app(settings),
    host=settings.gateway_host,
    port=settings.gateway_port,
    log_config=None,  # uvicorn's lines go through the handler configured above
)
