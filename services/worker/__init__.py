"""The worker service: Celery processes that execute task attempts."""
