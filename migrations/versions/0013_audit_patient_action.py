"""an index on audit_event (patient_id, action): the roster's "missed check-ins" figure reads a
page's patients' missed markers, which scanned every audit row of those patients (issue 17)

Revision ID: 0013_audit_patient_action
Revises: 0012_followup_appointment
Create Date: 2026-12-02 18:15:00

Down: the index goes; nothing else changes.
"""
from alembic import op


revision = '0013_audit_patient_action'
down_revision = '0012_followup_appointment'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_audit_event_patient_action', 'audit_event', ['patient_id', 'action'], unique=False)


def downgrade():
    op.drop_index('ix_audit_event_patient_action', table_name='audit_event')
