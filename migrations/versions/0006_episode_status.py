"""an enrolment can be paused until a date and ended with a reason (issue 13 §2)

Revision ID: 0006_episode_status
Revises: 0005_rate_limit_counter
Create Date: 2026-12-02 01:20:00

The status column is a non-native enum (a VARCHAR(16) without a CHECK constraint), so the new
value "ended" needs no change to it.
"""
from alembic import op
import sqlalchemy as sa

from recovery.store.db import UTCDateTime


revision = '0006_episode_status'
down_revision = '0005_rate_limit_counter'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('enrolment') as batch_op:
        batch_op.add_column(sa.Column('paused_until', UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('ended_at', UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('end_reason', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('end_note', sa.Text(), nullable=True))


def downgrade():
    # An ended enrolment stays ended for the older code, which knows "withdrawn" and treats every
    # status other than "active" as ended.
    op.execute("UPDATE enrolment SET status = 'withdrawn' WHERE status = 'ended'")
    with op.batch_alter_table('enrolment') as batch_op:
        batch_op.drop_column('end_note')
        batch_op.drop_column('end_reason')
        batch_op.drop_column('ended_at')
        batch_op.drop_column('paused_until')
