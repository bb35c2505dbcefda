"""`flask api-token create|revoke|list`: a clinic's keys to the FHIR API (recovery/services/api_tokens.py)."""
from __future__ import annotations

import click
from flask.cli import with_appcontext

from recovery.cli.exit import fail


@click.group("api-token")
def api_token_group():
    """Clinic API tokens for the FHIR API at /fhir."""


def _clinic(slug: str):
    import sqlalchemy as sa

    from recovery.store.db import db
    from recovery.store.models import Clinic
    clinic = db.session.scalar(sa.select(Clinic).where(Clinic.slug == slug))
    if clinic is None:
        fail(f"no clinic with slug {slug!r}")
    return clinic


@api_token_group.command("create")
@click.option("--clinic", "clinic_slug", required=True, help="Clinic slug, e.g. demo-clinic")
@click.option("--scope", "scopes", multiple=True, required=True, help="fhir.read and/or fhir.write (repeat)")
@click.option("--label", default="", help="What the token is for, e.g. 'EHR export nightly'")
@with_appcontext
def create_command(clinic_slug, scopes, label):
    """Make a token and print it once (only its digest is kept)."""
    from recovery.clock import utcnow
    from recovery.services.api_tokens import TokenError, create_token
    from recovery.store.db import begin_write, db

    begin_write(db.session)
    clinic = _clinic(clinic_slug)
    try:
        issued = create_token(db.session, clinic=clinic, scopes=list(scopes), label=label, now=utcnow())
    except TokenError as e:
        fail(str(e))
    db.session.commit()
    click.echo(f"token {issued.token.id} for {clinic.name} ({', '.join(issued.token.scopes)}); "
               "it is shown only now, keep it in a secret store:", err=True)
    click.echo(issued.secret)


@api_token_group.command("revoke")
@click.option("--clinic", "clinic_slug", required=True)
@click.argument("token_id", type=int)
@with_appcontext
def revoke_command(clinic_slug, token_id):
    """Revoke a token by its number (`api-token list`)."""
    from recovery.clock import utcnow
    from recovery.services.api_tokens import revoke_token, token_for_clinic
    from recovery.store.db import begin_write, db

    begin_write(db.session)
    clinic = _clinic(clinic_slug)
    token = token_for_clinic(db.session, clinic.id, token_id)
    if token is None:
        fail(f"no token {token_id} in {clinic.slug}")
    changed = revoke_token(db.session, token=token, now=utcnow())
    db.session.commit()
    click.echo(f"token {token_id} {'revoked' if changed else 'was already revoked'}")


@api_token_group.command("list")
@click.option("--clinic", "clinic_slug", required=True)
@with_appcontext
def list_command(clinic_slug):
    """The clinic's tokens (never their secrets)."""
    from recovery.services.api_tokens import clinic_tokens
    from recovery.store.db import db

    clinic = _clinic(clinic_slug)
    for t in clinic_tokens(db.session, clinic.id):
        state = f"revoked {t.revoked_at:%Y-%m-%d %H:%M}Z" if t.revoked_at else "active"
        used = f"last used {t.last_used_at:%Y-%m-%d %H:%M}Z" if t.last_used_at else "never used"
        click.echo(f"{t.id}\t{','.join(t.scopes)}\t{state}\t{used}\t{t.label}")
