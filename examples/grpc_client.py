"""Schedule a task over gRPC and follow it to the end.

TASKSCHED_TOKEN=$(make token) python examples/grpc_client.py [address]
"""

from __future__ import annotations

import asyncio
import os
import sys

import grpc

from taskscheduler.v1 import task_pb2
from taskscheduler.v1 import task_service_pb2 as pb
from taskscheduler.v1.task_service_pb2_grpc import TaskServiceStub


async def main(address: str, token: str) -> None:
    credentials = (("authorization", f"Bearer {token}"),)
    async with grpc.aio.insecure_channel(address) as channel:
        stub = TaskServiceStub(channel)
        request = pb.ScheduleTaskRequest(kind="demo.sleep")
        request.payload.update({"seconds": 1})
        response = await stub.ScheduleTask(request, timeout=10, metadata=credentials)
        print("scheduled", response.task.id)
        stream = stub.StreamStatus(
            pb.StreamStatusRequest(task_id=response.task.id), metadata=credentials
        )
        async for event in stream:
            print(task_pb2.TaskStatus.Name(event.status), "attempt", event.attempt)


if __name__ == "__main__":
    address = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:50051"
    asyncio.run(main(address, os.environ["TASKSCHED_TOKEN"]))
