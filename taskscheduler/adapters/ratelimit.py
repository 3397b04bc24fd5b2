"""Per-tenant rate limiting shared by every api replica: GCRA in Redis, one round trip a call."""

from __future__ import annotations

import logging

import redis.asyncio as redis
from redis.exceptions import RedisError

from taskscheduler.core.errors import RateLimited, StorageUnavailable

log = logging.getLogger(__name__)

# GCRA (the generic cell rate algorithm): one key per tenant holds the theoretical arrival time.
# Returns {allowed, milliseconds to wait}.
GCRA = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local emission = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now_ms)
if tat < now_ms then tat = now_ms end
local new_tat = tat + emission
local allow_at = new_tat - tolerance
if allow_at > now_ms then
  return {0, allow_at - now_ms}
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil(new_tat - now_ms) + 1000)
return {1, 0}
"""

KEY_PREFIX = "taskscheduler:ratelimit:"


class RedisRateLimiter:
    """`rate` calls a second per tenant, `burst` at once; another tenant is never slowed."""

    def __init__(self, redis_url: str, rate: float, burst: int, fail_open: bool) -> None:
        self._client = redis.Redis.from_url(
            redis_url, socket_timeout=1.0, socket_connect_timeout=1.0
        )
        self._script = self._client.register_script(GCRA)
        self._emission_ms = 1000.0 / rate
        self._tolerance_ms = self._emission_ms * burst
        self._fail_open = fail_open

    async def acquire(self, tenant: str) -> None:
        try:
            allowed, wait_ms = await self._script(
                keys=[KEY_PREFIX + tenant], args=[self._emission_ms, self._tolerance_ms]
            )
        except (RedisError, OSError) as error:
            if self._fail_open:
                log.warning("rate limiter unreachable (%s); letting the call through", error)
                return
            raise StorageUnavailable("the rate limiter is unavailable; try again") from None
        if not allowed:
            raise RateLimited(retry_after=float(wait_ms) / 1000)

    async def close(self) -> None:
        await self._client.aclose()
