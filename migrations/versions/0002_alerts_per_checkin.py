"""alerts: one per check-in (family "checkin"), nurse tasks one per patient and family; follow-up time

Revision ID: 0002_alerts
Revises: 0001
Create Date: 2026-11-30 10:00:00

Alerts already in the database keep their family: they stay under the task index's rule (one
unresolved per patient and family), which is the rule they were written under.
"""
from alembic import op
import sqlalchemy as sa
import recovery.store.db


# revision identifiers, used by Alembic.
revision = '0002_alerts'
down_revision = '0001'
branch_labels = None
depends_on = None

OPEN_TASK = "status != 'resolved' AND family != 'checkin'"
OPEN_CHECKIN = "status != 'resolved' AND family = 'checkin'"
OPEN = "status != 'resolved'"


def upgrade():
    with op.batch_alter_table('alert', schema=None) as batch_op:
        batch_op.add_column(sa.Column('follow_up_at', recovery.store.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.drop_index('uq_alert_open_family', sqlite_where=sa.text(OPEN), postgresql_where=sa.text(OPEN))
        batch_op.create_index('uq_alert_open_task', ['patient_id', 'family'], unique=True,
                              sqlite_where=sa.text(OPEN_TASK), postgresql_where=sa.text(OPEN_TASK))
        batch_op.create_index('uq_alert_open_checkin', ['checkin_id'], unique=True,
                              sqlite_where=sa.text(OPEN_CHECKIN), postgresql_where=sa.text(OPEN_CHECKIN))
        batch_op.create_index('ix_alert_checkin_id', ['checkin_id'], unique=False)


def downgrade():
    # The old index allows one unresolved alert per patient and family; several check-ins of one
    # patient may each have one. Each keeps its rows under a family of its own (nothing is lost).
    op.execute("UPDATE alert SET family = 'checkin-' || CAST(id AS VARCHAR(20)) WHERE family = 'checkin'")
    with op.batch_alter_table('alert', schema=None) as batch_op:
        batch_op.drop_index('ix_alert_checkin_id')
        batch_op.drop_index('uq_alert_open_checkin', sqlite_where=sa.text(OPEN_CHECKIN),
                            postgresql_where=sa.text(OPEN_CHECKIN))
        batch_op.drop_index('uq_alert_open_task', sqlite_where=sa.text(OPEN_TASK),
                            postgresql_where=sa.text(OPEN_TASK))
        batch_op.create_index('uq_alert_open_family', ['patient_id', 'family'], unique=True,
                              sqlite_where=sa.text(OPEN), postgresql_where=sa.text(OPEN))
        batch_op.drop_column('follow_up_at')
