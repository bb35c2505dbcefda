"""outbox rows record the encoding and SMS segment count of the text as sent

Revision ID: 0004_outbox_segments
Revises: 0003_outbox_safety
Create Date: 2026-11-23 10:00:00

A patient name outside GSM-7 makes a text UCS-2 (70 characters per segment), so a text that fits
one segment for "Maria" may take two for "Zoë"; nurses see the count on the patient page.
"""
from alembic import op
import sqlalchemy as sa


revision = '0004_outbox_segments'
down_revision = '0003_outbox_safety'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('outbound_message') as batch_op:
        batch_op.add_column(sa.Column('segments', sa.SmallInteger(), nullable=True))
        batch_op.add_column(sa.Column('encoding', sa.String(length=8), nullable=True))


def downgrade():
    with op.batch_alter_table('outbound_message') as batch_op:
        batch_op.drop_column('encoding')
        batch_op.drop_column('segments')
