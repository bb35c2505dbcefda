"""the FHIR API (issue 15): clinic API tokens, the patient's MRN and birth date, the hospital's
Procedure identifier of an enrolment made through FHIR, and whether texts' words may be shared

Revision ID: 0009_fhir
Revises: 0008_clinic_admin
Create Date: 2026-12-02 13:50:00

"""
from alembic import op
import sqlalchemy as sa

from recovery.store.db import UTCDateTime


revision = '0009_fhir'
down_revision = '0008_clinic_admin'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('api_token',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('clinic_id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('label', sa.String(length=120), nullable=False),
    sa.Column('scopes', sa.JSON(), nullable=False),
    sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('last_used_at', UTCDateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['clinic_id'], ['clinic.id'], ),
    sa.ForeignKeyConstraint(['created_by_id'], ['staff_user.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash')
    )
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_token_clinic_id'), ['clinic_id'], unique=False)
    with op.batch_alter_table('patient') as batch_op:
        batch_op.add_column(sa.Column('mrn', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('birth_date', sa.Date(), nullable=True))
        batch_op.create_unique_constraint('uq_patient_clinic_mrn', ['clinic_id', 'mrn'])
    with op.batch_alter_table('enrolment') as batch_op:
        batch_op.add_column(sa.Column('source_procedure', sa.String(length=255), nullable=True))
        batch_op.create_unique_constraint('uq_enrolment_source_procedure', ['clinic_id', 'source_procedure'])
    with op.batch_alter_table('clinic') as batch_op:
        batch_op.add_column(sa.Column('fhir_text_bodies', sa.Boolean(), server_default=sa.false(),
                                      nullable=False))


def downgrade():
    with op.batch_alter_table('clinic') as batch_op:
        batch_op.drop_column('fhir_text_bodies')
    with op.batch_alter_table('enrolment') as batch_op:
        batch_op.drop_constraint('uq_enrolment_source_procedure', type_='unique')
        batch_op.drop_column('source_procedure')
    with op.batch_alter_table('patient') as batch_op:
        batch_op.drop_constraint('uq_patient_clinic_mrn', type_='unique')
        batch_op.drop_column('birth_date')
        batch_op.drop_column('mrn')
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_token_clinic_id'))
    op.drop_table('api_token')
