"""Applies the Alembic migrations: `python -m taskscheduler.adapters.postgres.migrate`."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from taskscheduler.settings import Settings, get_settings


def alembic_config(settings: Settings) -> Config:
    config = Config()
    config.set_main_option("script_location", "taskscheduler:migrations")
    config.set_main_option("sqlalchemy.url", settings.sqlalchemy_url.replace("%", "%%"))
    return config


def upgrade(settings: Settings) -> None:
    command.upgrade(alembic_config(settings), "head")


if __name__ == "__main__":
    upgrade(get_settings())
    print("database migrated to head")
