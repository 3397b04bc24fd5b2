"""The api service: TaskService over grpc.aio, with health and reflection."""
