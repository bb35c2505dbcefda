"""clinic settings, phone rungs on the on-call ladder, service hours (issue 13 §1)

Revision ID: 0008_clinic_admin
Revises: 0007_staff_admin
Create Date: 2026-12-02 14:00:00

A rung is a staff member or a name and a mobile number (the CHECK says exactly one of the two).
Pages to a rung carry their clinic and, for a phone rung, the number. Alerts record whether they
were opened outside the clinic's service hours (NULL: no service hours set).
"""
from alembic import op
import sqlalchemy as sa


revision = '0008_clinic_admin'
down_revision = '0007_staff_admin'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('clinic', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sms_name', sa.String(length=30), nullable=True))
        batch_op.add_column(sa.Column('after_hours_phone', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('sender_number', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('messaging_service_sid', sa.String(length=34), nullable=True))
        batch_op.add_column(sa.Column('service_hours', sa.JSON(), nullable=True))
    with op.batch_alter_table('on_call_step', schema=None) as batch_op:
        batch_op.alter_column('staff_id', existing_type=sa.Integer(), nullable=True)
        batch_op.add_column(sa.Column('name', sa.String(length=120), nullable=True))
        batch_op.add_column(sa.Column('mobile_e164', sa.String(length=16), nullable=True))
        batch_op.create_check_constraint('ck_on_call_step_target', '(staff_id IS NULL) <> (mobile_e164 IS NULL)')
    with op.batch_alter_table('outbound_message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('clinic_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('to_e164', sa.String(length=16), nullable=True))
        batch_op.create_foreign_key('fk_outbound_message_clinic_id', 'clinic', ['clinic_id'], ['id'])
    with op.batch_alter_table('alert', schema=None) as batch_op:
        batch_op.add_column(sa.Column('outside_service_hours', sa.Boolean(), nullable=True))


def downgrade():
    # The older code knows only staff rungs: phone rungs go (they are in the audit trail).
    op.execute("DELETE FROM on_call_step WHERE staff_id IS NULL")
    with op.batch_alter_table('alert', schema=None) as batch_op:
        batch_op.drop_column('outside_service_hours')
    with op.batch_alter_table('outbound_message', schema=None) as batch_op:
        batch_op.drop_constraint('fk_outbound_message_clinic_id', type_='foreignkey')
        batch_op.drop_column('to_e164')
        batch_op.drop_column('clinic_id')
    with op.batch_alter_table('on_call_step', schema=None) as batch_op:
        batch_op.drop_constraint('ck_on_call_step_target', type_='check')
        batch_op.drop_column('mobile_e164')
        batch_op.drop_column('name')
        batch_op.alter_column('staff_id', existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table('clinic', schema=None) as batch_op:
        batch_op.drop_column('service_hours')
        batch_op.drop_column('messaging_service_sid')
        batch_op.drop_column('sender_number')
        batch_op.drop_column('after_hours_phone')
        batch_op.drop_column('sms_name')
