"""Schedule a task over gRPC and follow it to the end: python examples/grpc_client.py [address]."""

from __future__ import annotations

import asyncio
import sys

import grpc

from taskscheduler.v1 import task_pb2
from taskscheduler.v1 import task_service_pb2 as pb
from taskscheduler.v1.task_service_pb2_grpc import TaskServiceStub


async def main(address: str) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = TaskServiceStub(channel)
        request = pb.ScheduleTaskRequest(kind="demo.sleep")
        request.payload.update({"seconds": 1})
        response = await stub.ScheduleTask(request, timeout=10)
        print("scheduled", response.task.id)
        stream = stub.StreamStatus(pb.StreamStatusRequest(task_id=response.task.id))
        async for event in stream:
            print(task_pb2.TaskStatus.Name(event.status), "attempt", event.attempt)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:50051"))
