"""Vacuum `task_attempts` after 2% of its rows changed, not 20%, as `tasks` (migration 0006).

make soak (90 minutes at 20 tasks/s, retention 10 minutes) found `task_attempts` with up to a
fifth of its rows dead before each autovacuum: retention deletes attempts as fast as new ones
are made, and the default scale factor waits for 20%. On a long history that is a fifth of a
large table dead, and a vacuum that reads all of it each time.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE task_attempts SET (autovacuum_vacuum_scale_factor = 0.02)")


def downgrade() -> None:
    op.execute("ALTER TABLE task_attempts RESET (autovacuum_vacuum_scale_factor)")
