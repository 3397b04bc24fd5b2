"""Every bounded setting is checked when Settings is built, with an error naming its
environment variable (a bad retry default must not fail each call, blaming the caller)."""

from __future__ import annotations

import pytest
from pydantic import AfterValidator, ValidationError

from taskscheduler.core import limits
from taskscheduler.settings import ENV_PREFIX, Settings

NAN = "nan"
INF = "inf"

# For each bounded setting: values just beyond each bound (and the numbers no bound admits).
REFUSED: dict[str, list[str]] = {
    "JWT_LEEWAY_SECONDS": ["-0.5", "300.5", NAN],
    "RATE_LIMIT_RPS": ["-1", INF],
    "RATE_LIMIT_BURST": ["0"],
    "MAX_PAYLOAD_BYTES": ["0"],
    "API_METRICS_PORT": ["-1", "65536"],
    "WORKER_METRICS_PORT": ["-1", "65536"],
    "DISPATCHER_METRICS_PORT": ["-1", "65536"],
    "GRPC_PORT": ["-1", "65536"],
    "API_PROCESSES": ["0", "65"],
    "GATEWAY_PROCESSES": ["0", "65"],
    "GRPC_MAX_MESSAGE_BYTES": ["0", str(2**31)],
    "GRPC_SHUTDOWN_GRACE_SECONDS": ["-1", NAN],
    "GATEWAY_PORT": ["-1", "65536"],
    "GATEWAY_DEADLINE_SECONDS": ["0", NAN, INF],
    "DB_POOL_SIZE": ["0"],
    "DB_CONNECT_TIMEOUT_SECONDS": ["0"],
    "DB_LOCK_TIMEOUT_SECONDS": ["0"],
    "WORKER_CONCURRENCY": ["0"],
    "LEASE_SECONDS": ["0", NAN],
    "STOP_GRACE_SECONDS": ["0"],
    "REPUBLISH_AFTER_SECONDS": ["0"],
    "REPUBLISH_MAX_SECONDS": ["0"],
    "IDEMPOTENCY_WINDOW_SECONDS": ["0"],
    "RETENTION_DAYS": ["0", INF],
    "RETENTION_BATCH_SIZE": ["0", "100001"],
    "DISPATCHER_BATCH_SIZE": ["0"],
    "DISPATCHER_IDLE_POLL_SECONDS": ["0"],
    "DISPATCH_AHEAD": ["0"],
    "IDS_PER_MESSAGE": ["0", "101"],
    "MESSAGE_TIME_BUDGET_SECONDS": ["0"],
    "WORKER_QUEUE_WATCH_SECONDS": ["0"],
    "WORKER_HEARTBEAT_SECONDS": ["0", INF],
    "WORKER_FORGET_AFTER_SECONDS": ["-1"],
    "DEFAULT_MAX_ATTEMPTS": [str(limits.MIN_ATTEMPTS - 1), str(limits.MAX_ATTEMPTS + 1)],
    "DEFAULT_INITIAL_BACKOFF_SECONDS": [
        "-0.001",
        str(limits.MAX_DURATION.total_seconds() + 1),
        NAN,
    ],
    "DEFAULT_MAX_BACKOFF_SECONDS": ["-0.001", str(limits.MAX_DURATION.total_seconds() + 1)],
    "DEFAULT_BACKOFF_MULTIPLIER": [
        str(limits.MIN_BACKOFF_MULTIPLIER - 0.01),
        str(limits.MAX_BACKOFF_MULTIPLIER + 0.01),
        NAN,
        INF,
    ],
}
# At each bound: accepted.
ACCEPTED: dict[str, list[str]] = {
    "DEFAULT_MAX_ATTEMPTS": [str(limits.MIN_ATTEMPTS), str(limits.MAX_ATTEMPTS)],
    "DEFAULT_INITIAL_BACKOFF_SECONDS": ["0"],
    "DEFAULT_MAX_BACKOFF_SECONDS": [str(limits.MAX_DURATION.total_seconds())],
    "DEFAULT_BACKOFF_MULTIPLIER": [
        str(limits.MIN_BACKOFF_MULTIPLIER),
        str(limits.MAX_BACKOFF_MULTIPLIER),
    ],
    "GRPC_PORT": ["0", "65535"],
    "JWT_LEEWAY_SECONDS": ["0", "300"],
    "IDS_PER_MESSAGE": ["1", "100"],
}


def _bounded_settings() -> set[str]:
    """The settings declared with a bound (an AfterValidator made by settings._bounded)."""
    return {
        name.upper()
        for name, info in Settings.model_fields.items()
        if any(
            isinstance(meta, AfterValidator) and meta.func.__qualname__.startswith("_bounded")
            for meta in info.metadata
        )
    }


def test_every_bounded_setting_has_a_case() -> None:
    assert _bounded_settings() == set(REFUSED)


@pytest.mark.parametrize(
    ("variable", "value"), [(name, value) for name, values in REFUSED.items() for value in values]
)
def test_a_setting_beyond_its_bound_fails_the_start_naming_its_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(ENV_PREFIX + variable, value)
    with pytest.raises(ValidationError, match=f"{ENV_PREFIX}{variable} must be"):
        Settings()


@pytest.mark.parametrize(
    ("variable", "value"), [(name, value) for name, values in ACCEPTED.items() for value in values]
)
def test_a_setting_at_its_bound_is_accepted(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(ENV_PREFIX + variable, value)
    assert Settings()


def test_a_default_backoff_cap_below_its_start_fails_the_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TASKSCHED_DEFAULT_INITIAL_BACKOFF_SECONDS", "10")
    monkeypatch.setenv("TASKSCHED_DEFAULT_MAX_BACKOFF_SECONDS", "5")
    with pytest.raises(ValidationError, match="TASKSCHED_DEFAULT_MAX_BACKOFF_SECONDS must not"):
        Settings()


def test_a_worker_queue_that_is_no_queue_name_fails_the_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TASKSCHED_WORKER_QUEUES", "emails,Not A Queue")
    with pytest.raises(ValidationError, match="TASKSCHED_WORKER_QUEUES: 'Not A Queue'"):
        Settings()


def test_a_broker_url_of_no_known_broker_fails_the_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BROKER_URL", "kafka://127.0.0.1:9092")
    with pytest.raises(ValidationError, match="BROKER_URL must be one of redis, rediss, amqp"):
        Settings()


@pytest.mark.parametrize(
    ("broker_url", "used", "rabbitmq"),
    [
        ("", "redis://r:6379/0", False),
        ("amqp://guest:guest@mq:5672//", "amqp://guest:guest@mq:5672//", True),
        ("rediss://other:6380/1", "rediss://other:6380/1", False),
    ],
)
def test_the_broker_is_broker_url_else_redis_url(
    monkeypatch: pytest.MonkeyPatch, broker_url: str, used: str, rabbitmq: bool
) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://r:6379/0")
    monkeypatch.setenv("BROKER_URL", broker_url)
    settings = Settings()
    assert (settings.celery_broker_url, settings.broker_is_rabbitmq) == (used, rabbitmq)
