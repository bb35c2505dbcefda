"""published versions of a clinic's plan (issue 13 §1, /admin/plan), and the version an enrolment uses

Revision ID: 0011_plan_versions
Revises: 0010_peg
Create Date: 2026-12-02 14:30:00

A published version is never changed or deleted (triggers refuse it): enrolled patients keep
reading it. Only its approval (a clinician's sign-off) may change.
"""
from alembic import op
import sqlalchemy as sa

from recovery.store.db import UTCDateTime


revision = '0011_plan_versions'
down_revision = '0010_peg'
branch_labels = None
depends_on = None

FIXED = "clinic_id, version, based_on, based_on_version, content, changes, published_by_id, published_at"


def upgrade():
    op.create_table('clinic_plan_version',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('clinic_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('based_on', sa.String(length=64), nullable=False),
    sa.Column('based_on_version', sa.Integer(), nullable=False),
    sa.Column('content', sa.Text(), nullable=False),
    sa.Column('changes', sa.JSON(), nullable=False),
    sa.Column('approval', sa.Enum('unapproved', 'approved', name='plan_approval', native_enum=False, length=16),
              nullable=False),
    sa.Column('published_by_id', sa.Integer(), nullable=False),
    sa.Column('published_at', UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['clinic_id'], ['clinic.id'], ),
    sa.ForeignKeyConstraint(['published_by_id'], ['staff_user.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('clinic_id', 'version')
    )
    with op.batch_alter_table('clinic_plan_version', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_clinic_plan_version_clinic_id'), ['clinic_id'], unique=False)
    with op.batch_alter_table('enrolment', schema=None) as batch_op:
        batch_op.add_column(sa.Column('plan_version_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key('fk_enrolment_plan_version_id', 'clinic_plan_version', ['plan_version_id'], ['id'])
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"""CREATE TRIGGER clinic_plan_version_no_update BEFORE UPDATE OF {FIXED} ON clinic_plan_version
            BEGIN SELECT RAISE(ABORT, 'a published plan version cannot change'); END""")
        op.execute("""CREATE TRIGGER clinic_plan_version_no_delete BEFORE DELETE ON clinic_plan_version
            BEGIN SELECT RAISE(ABORT, 'a published plan version cannot change'); END""")
    else:
        op.execute("""CREATE FUNCTION clinic_plan_version_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'a published plan version cannot change'; END $$""")
        op.execute(f"""CREATE TRIGGER clinic_plan_version_no_change BEFORE UPDATE OF {FIXED} OR DELETE
            ON clinic_plan_version FOR EACH ROW EXECUTE FUNCTION clinic_plan_version_fixed()""")


def downgrade():
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS clinic_plan_version_no_update")
        op.execute("DROP TRIGGER IF EXISTS clinic_plan_version_no_delete")
    else:
        op.execute("DROP TRIGGER IF EXISTS clinic_plan_version_no_change ON clinic_plan_version")
        op.execute("DROP FUNCTION IF EXISTS clinic_plan_version_fixed()")
    # Enrolments on a published version lose the link to it: the older code finds plans in files only.
    with op.batch_alter_table('enrolment', schema=None) as batch_op:
        batch_op.drop_constraint('fk_enrolment_plan_version_id', type_='foreignkey')
        batch_op.drop_column('plan_version_id')
    with op.batch_alter_table('clinic_plan_version', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_clinic_plan_version_clinic_id'))
    op.drop_table('clinic_plan_version')
