"""Health probes for containers: exit 0 when the process answers, 1 otherwise.

python -m taskscheduler.probe grpc 127.0.0.1:50051     (grpc.health.v1: SERVING)
python -m taskscheduler.probe http http://127.0.0.1:8000/healthz   (a 2xx answer)
"""

from __future__ import annotations

import sys

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

TIMEOUT_SECONDS = 3.0


def grpc_serving(address: str) -> bool:
    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=TIMEOUT_SECONDS
            )
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=TIMEOUT_SECONDS).is_success
    except httpx.HTTPError:
        return False


def main(argv: list[str]) -> int:
    probes = {"grpc": grpc_serving, "http": http_ok}
    if len(argv) != 2 or argv[0] not in probes:
        print(__doc__, file=sys.stderr)
        return 2
    return 0 if probes[argv[0]](argv[1]) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
