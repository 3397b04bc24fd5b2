"""The service processes: api (gRPC), worker (Celery) and dispatcher (timers)."""
