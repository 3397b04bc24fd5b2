"""Alembic migrations of the tasks schema."""
