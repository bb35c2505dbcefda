"""The PEG screens of a check-in (issue 16): three 0-10 questions about the past week, one per
screen, after the symptom questions and before the review, in the check-ins of day 0 (baseline,
when no nurse entered it), day 14 and 6 weeks (recovery/domain/peg.py decides which).

The routes are on the check-in blueprint (the same patient session rules). The answers go to
their own table (recovery/services/peg.py), never to the check-in's answers: triage never sees
them. Plain forms that post and redirect (JavaScript off); a wrong answer comes back with 422.
"""
from __future__ import annotations

from flask import g, redirect, render_template, request, url_for

from recovery.clock import utcnow
from recovery.domain import peg as peg_rules
from recovery.services import checkins, peg
from recovery.store.db import db
from recovery.web.access import patient_required
from recovery.web import i18n
from recovery.web.checkin import SCOPES, _next_url, _own, _setting, bp, peg_ask


def _ask_or_redirect(checkin_id: int, screen: str):
    c = _own(checkin_id)
    if c.status == "submitted":
        return None, redirect(url_for(".done", checkin_id=c.id), 303)
    setting = _setting(c)
    ask = peg_ask(setting)
    if ask is None or peg_rules.item_of_screen(screen) is None:  # not asked in this check-in
        return None, redirect(url_for(".resume", checkin_id=c.id), 303)
    return (setting, ask), None


def _render(setting: checkins.Setting, ask: peg.Ask, screen: str, value: str | None, error: str | None,
            status: int = 200):
    flow = checkins.flow_for(setting)
    item_id = peg_rules.item_of_screen(screen)
    wording = ask.instrument.wording(item_id, ask.language)
    previous = ask.before(screen)
    if previous is not None:
        back_url = url_for(".peg_step", checkin_id=setting.checkin.id, screen=previous)
    else:
        back_url = url_for(".step", checkin_id=setting.checkin.id, group_id=flow.last.id) if flow.last else None
    return render_template(
        "patient/checkin_peg.html", c=setting.checkin, clinic=setting.clinic, screen=screen, item_id=item_id,
        wording=wording, caption=ask.instrument.screen_text("caption", ask.language),
        intro=ask.instrument.screen_text("intro", ask.language) if previous is None else None,
        scale=range(ask.instrument.minimum, ask.instrument.maximum + 1), value=value, error=i18n.field_error(error) if error else None,
        position=len(flow.steps) + ask.screens.index(screen) + 1, total=flow.total + len(ask.screens),
        back_url=back_url), status


@bp.get("/<int:checkin_id>/peg/<screen>")
@patient_required(*SCOPES)
def peg_step(checkin_id: int, screen: str):
    found, elsewhere = _ask_or_redirect(checkin_id, screen)
    if elsewhere is not None:
        return elsewhere
    setting, ask = found
    given = ask.answers.get(peg_rules.item_of_screen(screen))
    return _render(setting, ask, screen, None if given is None else str(given), None)


@bp.post("/<int:checkin_id>/peg/<screen>")
@patient_required(*SCOPES)
def peg_answer(checkin_id: int, screen: str):
    found, elsewhere = _ask_or_redirect(checkin_id, screen)
    if elsewhere is not None:
        return elsewhere
    setting, ask = found
    item_id = peg_rules.item_of_screen(screen)
    raw = request.form.getlist(screen)
    value, error = peg_rules.parse_answer(raw, ask.instrument)
    if error is not None:
        typed = next((v for v in raw if v.strip()), None)
        return _render(setting, ask, screen, typed, error, 422)
    ask = peg.record_item(db.session, setting, ask, item_id, value, now=utcnow(), request_id=g.request_id)
    db.session.commit()
    nxt = ask.next_screen(after=screen)
    if nxt is not None:
        return redirect(url_for(".peg_step", checkin_id=setting.checkin.id, screen=nxt), 303)
    return redirect(_next_url(setting.checkin, checkins.flow_for(setting), ask=ask), 303)
