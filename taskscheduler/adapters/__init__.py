"""Adapters: the PostgreSQL store and the Celery broker, behind the core's interfaces."""
