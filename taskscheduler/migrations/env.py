"""Alembic environment: migrates the database named by the configuration's sqlalchemy.url."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from taskscheduler.adapters.postgres.schema import metadata

config = context.config


def run_migrations_online() -> None:
    engine = sa.create_engine(config.get_main_option("sqlalchemy.url") or "", poolclass=sa.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=metadata, compare_type=True)
        with context.begin_transaction():
            # One migrator at a time when several processes start together.
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(727274)"))
            context.run_migrations()
    engine.dispose()


run_migrations_online()
