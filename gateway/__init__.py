"""The REST gateway: FastAPI routes translated to TaskService gRPC calls, no business logic."""
