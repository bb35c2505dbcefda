"""a booked follow-up appointment on an enrolment: date and time (aware UTC) and place (issue 13 §2)

Revision ID: 0012_followup_appointment
Revises: 0011_plan_versions
Create Date: 2026-12-02 17:20:00

Down: the appointments are dropped; the timelines go back to the plan's own follow-up day (the
texts already re-planned for an appointment stay as planned until the next re-plan).
"""
from alembic import op
import sqlalchemy as sa

from recovery.store.db import UTCDateTime


revision = '0012_followup_appointment'
down_revision = '0011_plan_versions'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('enrolment', schema=None) as batch_op:
        batch_op.add_column(sa.Column('followup_at', UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('followup_place', sa.String(length=120), nullable=True))


def downgrade():
    with op.batch_alter_table('enrolment', schema=None) as batch_op:
        batch_op.drop_column('followup_place')
        batch_op.drop_column('followup_at')
