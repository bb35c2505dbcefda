"""PEG outcome answers in their own table (issue 16)

Revision ID: 0010_peg
Revises: 0009_fhir
Create Date: 2026-12-02 14:10:00

"""
from alembic import op
import sqlalchemy as sa

from recovery.store.db import UTCDateTime


revision = '0010_peg'
down_revision = '0009_fhir'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('peg_answer',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('enrolment_id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('point', sa.String(length=16), nullable=False),
    sa.Column('pain', sa.Integer(), nullable=True),
    sa.Column('enjoyment', sa.Integer(), nullable=True),
    sa.Column('activity', sa.Integer(), nullable=True),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('checkin_id', sa.Integer(), nullable=True),
    sa.Column('staff_id', sa.Integer(), nullable=True),
    sa.Column('instrument_version', sa.Integer(), nullable=False),
    sa.Column('language', sa.String(length=8), nullable=False),
    sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', UTCDateTime(timezone=True), nullable=False),
    sa.Column('completed_at', UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['checkin_id'], ['checkin.id'], ),
    sa.ForeignKeyConstraint(['enrolment_id'], ['enrolment.id'], ),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], ),
    sa.ForeignKeyConstraint(['staff_id'], ['staff_user.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('enrolment_id', 'point', name='uq_peg_answer_point')
    )
    with op.batch_alter_table('peg_answer', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_peg_answer_patient_id'), ['patient_id'], unique=False)


def downgrade():
    with op.batch_alter_table('peg_answer', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_peg_answer_patient_id'))
    op.drop_table('peg_answer')
