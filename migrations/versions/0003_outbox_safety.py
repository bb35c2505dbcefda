"""outbound_message.safety: the plan's safety texts (S01, discharge-day S02) keep the 23:00 rule at send time

Revision ID: 0003_outbox_safety
Revises: 0002_alerts
Create Date: 2026-11-23 10:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0003_outbox_safety'
down_revision = '0002_alerts'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('outbound_message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('safety', sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade():
    with op.batch_alter_table('outbound_message', schema=None) as batch_op:
        batch_op.drop_column('safety')
