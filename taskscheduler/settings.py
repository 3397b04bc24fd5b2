"""All configuration, read from the environment in one place (pydantic-settings)."""

from __future__ import annotations

import math
import re
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import (
    AfterValidator,
    AliasChoices,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from taskscheduler.core.execution import LeaseSettings
from taskscheduler.core.limits import (
    MAX_ATTEMPTS,
    MAX_BACKOFF_MULTIPLIER,
    MAX_DURATION,
    MIN_ATTEMPTS,
    MIN_BACKOFF_MULTIPLIER,
    QUEUE_NAME_PATTERN,
    QUEUE_NAME_RULE,
)
from taskscheduler.core.model import RetryPolicy

ENV_PREFIX = "TASKSCHED_"

MIN_SECRET_LENGTH = 32
COMPOSE_DEVELOPMENT_SECRET = "docker-compose-development-secret-not-for-production-use"
KUBERNETES_PLACEHOLDER_SECRET = "replace-with-48-or-more-random-characters-from-your-vault"
KNOWN_DEFAULT_SECRETS = frozenset(
    {
        "secret",
        "changeme",
        "change-me",
        "development",
        "dev-secret",
        COMPOSE_DEVELOPMENT_SECRET,
        KUBERNETES_PLACEHOLDER_SECRET,
    }
)
MAX_PORT = 65_535
MAX_PROCESSES = 64
MAX_GRPC_MESSAGE_BYTES = 2**31 - 1  # gRPC holds the limit in a C int
MAX_DURATION_SECONDS = MAX_DURATION.total_seconds()
QUEUE_NAME = re.compile(QUEUE_NAME_PATTERN)


def env_variable(info: ValidationInfo) -> str:
    """The environment variable a setting is read from."""
    return ENV_PREFIX + str(info.field_name).upper()


def _bounded(
    low: float | None = None, high: float | None = None, *, above: bool = False
) -> AfterValidator:
    """A finite number from `low` (above it, with `above`) to `high`; out of bounds, an error
    naming the environment variable, so that a bad setting fails the start, not each call."""

    def check(value: float, info: ValidationInfo) -> float:
        inside = (
            math.isfinite(value)
            and (low is None or (value > low if above else value >= low))
            and (high is None or value <= high)
        )
        if not inside:
            raise ValueError(
                f"{env_variable(info)} must be a number {_bounds_text(low, high, above)}"
            )
        return value

    return AfterValidator(check)


def _bounds_text(low: float | None, high: float | None, above: bool) -> str:
    lower = "" if low is None else f"{'above' if above else 'at least'} {low:g}"
    upper = "" if high is None else f"at most {high:g}"
    return ", ".join(part for part in (lower, upper) if part)


Positive = Annotated[float, _bounded(0, above=True)]
AtLeastOne = Annotated[int, _bounded(1)]
Port = Annotated[int, _bounded(0, MAX_PORT)]
Processes = Annotated[int, _bounded(1, MAX_PROCESSES)]


AMQP_SCHEMES = ("amqp", "amqps")
BROKER_SCHEMES = ("redis", "rediss", *AMQP_SCHEMES)


class Settings(BaseSettings):
    """Every setting of every process; TASKSCHED_ prefixed, except DATABASE_URL and REDIS_URL."""

    # A refused value (a secret too short, say) must not be printed back in the error.
    model_config = SettingsConfigDict(
        env_prefix="TASKSCHED_", extra="ignore", hide_input_in_errors=True
    )

    database_url: str = Field(
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        validation_alias=AliasChoices("DATABASE_URL", "TASKSCHED_DATABASE_URL"),
        description="PostgreSQL in plain libpq form: postgresql://user@host:5432/db",
    )
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        validation_alias=AliasChoices("REDIS_URL", "TASKSCHED_REDIS_URL"),
        description="Redis: the Celery broker unless BROKER_URL is set, and the rate limiter's",
    )
    broker_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("BROKER_URL", "TASKSCHED_BROKER_URL"),
        description="The Celery broker when not REDIS_URL: amqp://user:pass@host:5672// "
        "(RabbitMQ: quorum queues, publisher confirms)",
    )
    environment: Literal["development", "production"] = Field(
        default="development", description="development or production (a typo is refused)"
    )

    jwt_secret: str | None = Field(default=None, repr=False, description="HS256 shared secret")
    jwt_public_key_file: Path | None = Field(
        default=None, description="PEM public key: RS256 for an RSA key, ES256 for an EC key"
    )
    jwt_jwks_file: Path | None = Field(default=None, description="JWKS file (RSA and EC keys)")
    jwt_issuer: str | None = Field(default=None, description="Required `iss` when set")
    jwt_audience: str | None = Field(default=None, description="Required `aud` when set")
    jwt_leeway_seconds: Annotated[float, _bounded(0, 300)] = 30.0

    rate_limit_rps: Annotated[float, _bounded(0)] = Field(
        default=100.0, description="Calls per second per tenant; 0 turns the limit off"
    )
    rate_limit_burst: AtLeastOne = Field(default=200, description="Calls a tenant may make at once")
    rate_limit_redis_url: str | None = Field(
        default=None, description="Redis of the rate limiter; unset: REDIS_URL"
    )
    rate_limit_fail_open: bool = Field(
        default=True,
        description="With Redis unreachable: true lets calls through, false answers UNAVAILABLE",
    )

    max_payload_bytes: AtLeastOne = Field(
        default=256 * 1024, description="Largest task payload (JSON, UTF-8 bytes)"
    )

    tls_cert_file: Path | None = Field(default=None, description="The api serves TLS with this")
    tls_key_file: Path | None = Field(default=None, description="... and this private key")
    tls_client_ca_file: Path | None = Field(
        default=None, description="When set, the api requires client certificates it signed (mTLS)"
    )
    api_tls_ca_file: Path | None = Field(
        default=None, description="The gateway connects to the api over TLS, trusting this CA"
    )
    api_tls_cert_file: Path | None = Field(default=None, description="The gateway's client cert")
    api_tls_key_file: Path | None = Field(default=None, description="... and its private key")

    event_loop: Literal["asyncio", "uvloop"] = Field(
        default="asyncio", description="The api's event loop (uvloop: see the benchmark)"
    )
    log_format: Literal["text", "json"] = Field(
        default="text", description="text, or json: one object a line, with the task context"
    )
    log_level: str = Field(default="INFO", description="The root logger's level")
    metrics_host: str = Field(default="127.0.0.1", description="Where /metrics ports listen")
    api_metrics_port: Port = Field(default=9101, description="0: no metrics")
    worker_metrics_port: Port = Field(default=9102, description="0: no metrics")
    dispatcher_metrics_port: Port = Field(default=9103, description="0: no metrics")
    grpc_host: str = "127.0.0.1"
    grpc_port: Port = Field(default=50051, description="0: any free port")
    api_processes: Processes = Field(
        default=1,
        description="api processes serving the one gRPC port (SO_REUSEPORT), each with its own "
        "event loop and database pool: one per core the api may use",
    )
    gateway_processes: Processes = Field(
        default=1, description="Gateway processes serving the one REST port"
    )
    grpc_max_message_bytes: Annotated[int, _bounded(1, MAX_GRPC_MESSAGE_BYTES)] = 4 * 1024 * 1024
    grpc_shutdown_grace_seconds: Annotated[float, _bounded(0)] = 10.0

    gateway_host: str = "127.0.0.1"
    gateway_port: Port = 8000
    api_address: str = Field(
        default="127.0.0.1:50051", description="Where the gateway finds the api"
    )
    gateway_deadline_seconds: Positive = Field(
        default=10.0, description="How long the gateway waits for the api to answer a call"
    )

    db_pool_size: AtLeastOne = 10
    db_connect_timeout_seconds: Positive = 5.0
    db_lock_timeout_seconds: Positive = Field(
        default=10.0,
        description="A statement waiting longer than this for a row lock fails (and is retried)",
    )

    handler_modules: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Extra modules that register kinds (comma separated)"
    )

    worker_concurrency: AtLeastOne = 2
    lease_seconds: Positive = Field(
        default=30.0, description="How long a RUNNING attempt lives without a heartbeat"
    )
    stop_grace_seconds: Positive = Field(
        default=10.0,
        description="How long a cancelled handler may run on before it is interrupted, and an "
        "interrupted one (cancelled, or past its timeout) before its process is killed",
    )
    celery_queue: str = "taskscheduler"

    republish_after_seconds: Positive = Field(
        default=30.0,
        description="A PENDING task not claimed this long is published again (then 2x, 4x ...)",
    )
    republish_max_seconds: Positive = Field(
        default=600.0, description="The longest wait between two publications"
    )
    idempotency_window_seconds: Positive = Field(
        default=86_400.0, description="How long a request_id / Idempotency-Key is kept"
    )

    fault_crash_before_publish_file: Path | None = Field(
        default=None,
        description="Fault suite only: when this file appears, a dispatcher deletes it and exits "
        "between its next commit and publish",
    )

    retention_days: Positive = Field(
        default=30.0, description="Finished tasks older than this are deleted"
    )
    retention_batch_size: Annotated[int, _bounded(1, 100_000)] = 1000

    dispatcher_batch_size: AtLeastOne = 100
    dispatcher_idle_poll_seconds: Positive = 1.0
    dispatch_ahead: AtLeastOne = Field(
        default=200,
        description="Most tasks of one queue with the broker and not yet claimed: the backlog "
        "beyond waits in PostgreSQL, where priorities, pause and purge apply to it",
    )
    ids_per_message: Annotated[int, _bounded(1, 100)] = Field(
        default=10,
        description="Most task ids one broker message carries when a pass lets many tasks of a "
        "queue through (1: one message per task); a lone task always goes alone",
    )
    message_time_budget_seconds: Positive = Field(
        default=1.0,
        description="A worker runs the ids of one message one after another for at most this "
        "long; the ids left then go back to the broker, for any worker to take",
    )
    worker_queues: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="The queues this worker serves; empty: every queue, new ones included",
    )
    worker_heartbeat_seconds: Positive = Field(
        default=5.0,
        description="How often each worker process writes its heartbeat; one silent for three "
        "of these is shown LOST",
    )
    worker_forget_after_seconds: Positive = Field(
        default=3600.0, description="A worker STOPPED or LOST this long is no longer listed"
    )
    worker_queue_watch_seconds: Positive = Field(
        default=2.0, description="How often a worker serving every queue looks for new ones"
    )

    # The service's retry policy, under every queue's and kind's: bounded as a caller's is.
    default_max_attempts: Annotated[int, _bounded(MIN_ATTEMPTS, MAX_ATTEMPTS)] = 3
    default_initial_backoff_seconds: Annotated[float, _bounded(0, MAX_DURATION_SECONDS)] = 1.0
    default_max_backoff_seconds: Annotated[float, _bounded(0, MAX_DURATION_SECONDS)] = 300.0
    default_backoff_multiplier: Annotated[
        float, _bounded(MIN_BACKOFF_MULTIPLIER, MAX_BACKOFF_MULTIPLIER)
    ] = 2.0
    default_jitter: bool = True

    @model_validator(mode="after")
    def _safe_in_production(self) -> Settings:
        if self.environment != "production":
            return self
        if self.fault_crash_before_publish_file is not None:
            raise ValueError("fault injection is refused in production")
        if not (self.jwt_secret or self.jwt_public_key_file or self.jwt_jwks_file):
            raise ValueError(
                "production needs TASKSCHED_JWT_SECRET, _PUBLIC_KEY_FILE or _JWKS_FILE"
            )
        if self.jwt_secret is not None and (
            len(self.jwt_secret) < MIN_SECRET_LENGTH or self.jwt_secret in KNOWN_DEFAULT_SECRETS
        ):
            raise ValueError(
                f"TASKSCHED_JWT_SECRET must be a random value of {MIN_SECRET_LENGTH}+ characters"
            )
        return self

    @model_validator(mode="after")
    def _tls_pairs(self) -> Settings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("TASKSCHED_TLS_CERT_FILE and TASKSCHED_TLS_KEY_FILE go together")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ValueError("TASKSCHED_TLS_CLIENT_CA_FILE needs the api to serve TLS")
        return self

    @model_validator(mode="after")
    def _backoff_cap_not_below_start(self) -> Settings:
        if self.default_max_backoff_seconds < self.default_initial_backoff_seconds:
            raise ValueError(
                f"{ENV_PREFIX}DEFAULT_MAX_BACKOFF_SECONDS must not be less than "
                f"{ENV_PREFIX}DEFAULT_INITIAL_BACKOFF_SECONDS"
            )
        return self

    @field_validator("broker_url")
    @classmethod
    def _known_broker(cls, url: str | None) -> str | None:
        if not url:
            return None  # BROKER_URL= (empty): REDIS_URL's Redis
        if urlsplit(url).scheme not in BROKER_SCHEMES:
            raise ValueError(f"BROKER_URL must be one of {', '.join(BROKER_SCHEMES)}:// URLs")
        return url

    @field_validator("handler_modules", "worker_queues", mode="before")
    @classmethod
    def _split_modules(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("worker_queues")
    @classmethod
    def _queue_names(cls, names: list[str], info: ValidationInfo) -> list[str]:
        wrong = [name for name in names if not QUEUE_NAME.fullmatch(name)]
        if wrong:
            raise ValueError(f"{env_variable(info)}: {wrong[0]!r} is not {QUEUE_NAME_RULE}")
        return names

    @property
    def lease(self) -> LeaseSettings:
        return LeaseSettings(
            duration=timedelta(seconds=self.lease_seconds),
            stop_grace=timedelta(seconds=self.stop_grace_seconds),
        )

    @property
    def default_retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=self.default_max_attempts,
            initial_backoff=timedelta(seconds=self.default_initial_backoff_seconds),
            max_backoff=timedelta(seconds=self.default_max_backoff_seconds),
            backoff_multiplier=self.default_backoff_multiplier,
            jitter=self.default_jitter,
        )

    @property
    def celery_broker_url(self) -> str:
        """The broker Celery uses: BROKER_URL, else REDIS_URL."""
        return self.broker_url or self.redis_url

    @property
    def broker_is_rabbitmq(self) -> bool:
        return urlsplit(self.celery_broker_url).scheme in AMQP_SCHEMES

    @property
    def sqlalchemy_url(self) -> str:
        """DATABASE_URL with the psycopg 3 driver named (SQLAlchemy's sync and async engines)."""
        return with_driver(self.database_url, "postgresql+psycopg")

    @property
    def libpq_url(self) -> str:
        """DATABASE_URL as psycopg connects to it directly (LISTEN connections)."""
        return with_driver(self.database_url, "postgresql")


def with_driver(url: str, scheme: str) -> str:
    parts = urlsplit(url)
    if not parts.scheme.startswith("postgres"):
        raise ValueError(f"DATABASE_URL must be a postgresql:// URL, got scheme {parts.scheme!r}")
    return urlunsplit((scheme, *parts[1:]))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
