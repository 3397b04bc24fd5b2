"""The http.request kind: call a webhook (as Cloud Tasks' HttpRequest does).

2xx is SUCCESS with the status and a bounded excerpt of the body as the result; 5xx, 429 and
connection errors are retried under the task's policy; any other status fails at once.
"""

from __future__ import annotations

from typing import Any, Literal

import httpx
import pydantic

from taskscheduler.core.kinds import NonRetryableError, PayloadModel, TaskContext, registry

BODY_EXCERPT_BYTES = 4096
RETRYABLE_STATUSES = frozenset({408, 425, 429})


class HttpRequestPayload(PayloadModel):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"] = "POST"
    url: pydantic.AnyHttpUrl
    headers: dict[str, str] = pydantic.Field(default_factory=dict)
    body: str | None = pydantic.Field(default=None, description="Sent as is.")
    json_body: Any = pydantic.Field(
        default=None, alias="json", description="Sent as JSON (instead of body)."
    )
    timeout_seconds: float = pydantic.Field(default=30.0, gt=0, le=3600)

    @pydantic.model_validator(mode="after")
    def _one_body(self) -> HttpRequestPayload:
        if self.body is not None and self.json_body is not None:
            raise ValueError("give either body or json, not both")
        return self


class HttpStatusError(RuntimeError):
    """The target answered with a status worth retrying (5xx, 429, 408)."""


@registry.register("http.request", payload=HttpRequestPayload, non_retryable=(httpx.InvalidURL,))
def http_request(payload: HttpRequestPayload, context: TaskContext) -> dict[str, Any]:
    headers = {"X-Task-Id": context.task_id, "X-Task-Attempt": str(context.attempt)}
    headers.update(payload.headers)
    response = httpx.request(
        payload.method,
        str(payload.url),
        headers=headers,
        content=payload.body,
        json=payload.json_body,
        timeout=payload.timeout_seconds,
        follow_redirects=False,
    )
    excerpt = response.content[:BODY_EXCERPT_BYTES].decode("utf-8", errors="replace")
    summary = f"{payload.method} {payload.url} answered {response.status_code}: {excerpt[:200]}"
    if response.status_code >= 500 or response.status_code in RETRYABLE_STATUSES:
        raise HttpStatusError(summary)
    if not response.is_success:
        raise NonRetryableError(summary)
    return {
        "status_code": response.status_code,
        "body": excerpt,
        "truncated": len(response.content) > BODY_EXCERPT_BYTES,
    }
