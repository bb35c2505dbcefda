"""staff administration (issue 13 §1): set-password links, TOTP second factor, last sign-in,
and the clinic's "every staff member uses a second factor" setting

Revision ID: 0007_staff_admin
Revises: 0006_episode_status
Create Date: 2026-12-02 14:00:00
"""
from alembic import op
import sqlalchemy as sa

from recovery.store.db import UTCDateTime


revision = '0007_staff_admin'
down_revision = '0006_episode_status'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('clinic') as batch_op:
        batch_op.add_column(sa.Column('require_totp', sa.Boolean(), server_default=sa.false(), nullable=False))
    with op.batch_alter_table('staff_user') as batch_op:
        batch_op.add_column(sa.Column('last_sign_in_at', UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('totp_secret', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('totp_pending_secret', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('totp_last_step', sa.BigInteger(), nullable=True))
    op.create_table(
        'staff_password_link',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('staff_id', sa.Integer(), nullable=False),
        sa.Column('purpose', sa.String(length=16), nullable=False),
        sa.Column('created_by_id', sa.Integer(), nullable=True),
        sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
        sa.Column('expires_at', UTCDateTime(timezone=True), nullable=False),
        sa.Column('used_at', UTCDateTime(timezone=True), nullable=True),
        sa.Column('voided_at', UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['created_by_id'], ['staff_user.id']),
        sa.ForeignKeyConstraint(['staff_id'], ['staff_user.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('token_hash'),
    )
    with op.batch_alter_table('staff_password_link') as batch_op:
        batch_op.create_index(batch_op.f('ix_staff_password_link_staff_id'), ['staff_id'], unique=False)


def downgrade():
    # An account still waiting for its first password keeps the unusable marker hash: it cannot sign in.
    with op.batch_alter_table('staff_password_link') as batch_op:
        batch_op.drop_index(batch_op.f('ix_staff_password_link_staff_id'))
    op.drop_table('staff_password_link')
    with op.batch_alter_table('staff_user') as batch_op:
        batch_op.drop_column('totp_last_step')
        batch_op.drop_column('totp_pending_secret')
        batch_op.drop_column('totp_secret')
        batch_op.drop_column('last_sign_in_at')
    with op.batch_alter_table('clinic') as batch_op:
        batch_op.drop_column('require_totp')
