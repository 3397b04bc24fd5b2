"""kombu's Redis transport, with a channel that reports a closed connection as a connection
error.

On a broker restart, Celery 5.7's consumer collects the broken connection (which detaches its
transport) and then closes it; a channel whose BRPOP read failed during the collect is closed
again then, and its requeue of unacknowledged messages asks the detached transport for its
address: an AttributeError, which is no connection error, so the worker exits ("Unrecoverable
error") instead of reconnecting. Raised as a connection error, the teardown ignores it and the
consumer reconnects; the messages it could not requeue are the repair loop's to publish again.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError

# Celery's `broker_transport`: this module's Transport, for a redis:// broker URL.
TRANSPORT = f"{__name__}:Transport"


class Channel(kombu_redis.Channel):
    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        transport = self.connection
        if transport is None or transport.client is None:
            raise RedisConnectionError("the broker connection of this channel is closed")
        params: dict[str, Any] = super()._connparams(asynchronous=asynchronous)  # type: ignore[no-untyped-call]
        return params


class Transport(kombu_redis.Transport):
    Channel = Channel
