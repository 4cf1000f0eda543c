"""lead forms: cover picture

Revision ID: 427e2928161f
Revises: a699939d68ea
Create Date: 2026-11-23 11:12:20.668499
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '427e2928161f'
down_revision: str | None = 'a699939d68ea'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('lead_forms', sa.Column('cover', sa.LargeBinary(), nullable=True))
    op.add_column('lead_forms', sa.Column('cover_content_type', sa.String(length=32), nullable=True))
    op.add_column('lead_forms', sa.Column('cover_updated_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column('lead_forms', 'cover_updated_at')
    op.drop_column('lead_forms', 'cover_content_type')
    op.drop_column('lead_forms', 'cover')
