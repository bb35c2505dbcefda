"""The re-check just before a text goes (consent, opt-out, still wanted, stale, quiet hours, opt-in first)
and rendering its body with a fresh link."""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import time as dt_time
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm import Session

from recovery.domain import contact
from recovery.domain.episode_rules import held_by_pause
from recovery.dispatch.claims import OPT_IN_REF, OPT_IN_WAIT, reserve_slot
from recovery.dispatch.outcomes import CHECKIN_KINDS, fail_row, finish_row, release_row
from recovery.dispatch.settings import DispatchSettings
from recovery.domain import sms_encoding, texts
from recovery.domain.plan.offsets import parse_clock
from recovery.domain.timeline import local_to_utc, next_allowed_send
from recovery.messaging import Sender
from recovery.services import clinic_plans
from recovery.services.sessions import issue_link
from recovery.store import outbox
from recovery.store.db import is_sqlite, write_unit
from recovery.store.models import (Alert, AlertStatus, Checkin, CheckinStatus, Clinic, Enrolment, EnrolmentStatus,
                                   OutboundMessage, OutboxStatus, Patient, StaffUser)

log = logging.getLogger("recovery.dispatch")
OM = OutboundMessage


STALE_AFTER: dict[str, timedelta] = {
    "checkin_invite": timedelta(hours=12),
    "checkin_reminder": timedelta(hours=12),
    "reminder": timedelta(hours=12),
    "event_reply": timedelta(hours=12),
}


# Event replies whose {link} opens an ad hoc check-in (S22 "check in again", S23 "re-measure").
CHECKIN_LINK_REPLIES = frozenset({"S22", "S23"})


LINK_PLACEHOLDER_STORED = "[link]"


# The one reply to an opt-out in the patient's own words; the FCC allows one within 5 minutes.
OPT_OUT_REPLY_REF, OPT_OUT_REPLY_WITHIN = ":" + outbox.OPT_OUT_REF, timedelta(minutes=5)


@dataclass(frozen=True)
class NotSent:
    """Why a claimed row is not sent now (the row is already finished or released accordingly):
    one of the outcomes SendReport counts, e.g. "opted_out", "quiet_hours", "lost_claim"."""
    reason: str


@dataclass(frozen=True)
class Prepared:
    id: int
    to: str
    body: str
    status_callback: str
    message_id: str
    slot: datetime  # pacing: not before this
    sender: Sender | None = None  # the clinic's own sender; None: the gateway's (the app config)


_plan_cache: dict[tuple, tuple] = {}


_plan_lock = threading.Lock()


class SendContext:
    """Per-run caches: clinic contact details, and per template its quiet hours and the name texts
    give the sender (a template id and version never change content: a new version is a new file,
    so that cache lives longer)."""

    def __init__(self, settings: DispatchSettings):
        self.settings = settings
        self._clinics: dict[int, tuple] = {}

    def _clinic(self, session: Session, clinic_id: int) -> tuple:
        """Read once per run (a scheduler tick): a change at /admin/clinic applies from the next one."""
        if clinic_id not in self._clinics:
            clinic = session.get(Clinic, clinic_id)
            sender = (Sender(from_number=clinic.sender_number, messaging_service_sid=clinic.messaging_service_sid)
                      if clinic.sender_number or clinic.messaging_service_sid else None)
            self._clinics[clinic_id] = (clinic.emergency_number, clinic.care_phone, clinic.template_file,
                                        clinic.sms_name, sender)
        return self._clinics[clinic_id]

    def sender(self, session: Session, clinic_id: int) -> Sender | None:
        """The clinic's own sender, or None for the app's (TWILIO_FROM_NUMBER / _MESSAGING_SERVICE_SID)."""
        return self._clinic(session, clinic_id)[4]

    def contact(self, session: Session, clinic_id: int) -> tuple[str, str]:
        """({emerg}, {phone}) of a clinic."""
        return self._clinic(session, clinic_id)[:2]

    def _plan(self, session: Session, enrolment: Enrolment | None) -> tuple | None:
        """(quiet hours, safety quiet hours, {clinic} name) of the enrolment's template, or None
        when there is no template to ask."""
        if enrolment is None:
            return None
        s = self.settings
        template_file = self._clinic(session, enrolment.clinic_id)[2]
        # a published version by its row (its id and version name it only within its clinic)
        key = (s.schedules_dir, enrolment.plan_version_id) if enrolment.plan_version_id is not None else (
            s.schedules_dir, enrolment.template_id, enrolment.template_version, template_file)
        with _plan_lock:
            cached = _plan_cache.get(key)
        if cached is None:
            try:
                t = clinic_plans.plan_for(session, s.schedules_dir, enrolment)
            except LookupError:
                log.error("enrolment %d: template %s v%s not found; default quiet hours used", enrolment.id,
                          enrolment.template_id, enrolment.template_version)
                return None
            cached = (t.quiet_hours, t.safety_quiet_hours, t.sms_name)
            with _plan_lock:
                _plan_cache[key] = cached
        return cached

    def quiet_hours(self, session: Session, enrolment: Enrolment | None, *, safety: bool = False) -> tuple:
        """The template's quiet hours; for a safety text (row.safety) the ones that start at its
        safety_start (23:00) instead."""
        found = self._plan(session, enrolment)
        if found is None:
            s = self.settings
            return (s.safety_quiet_start, s.quiet_hours[1]) if safety else s.quiet_hours
        return found[1] if safety else found[0]

    def sms_name(self, session: Session, enrolment: Enrolment | None) -> str:
        """{clinic}: the name set at /admin/clinic, else the plan's [contact] name."""
        if enrolment is not None and self._clinic(session, enrolment.clinic_id)[3]:
            return self._clinic(session, enrolment.clinic_id)[3]
        found = self._plan(session, enrolment)
        return found[2] if found else ""


def _recipient_problem(row: OutboundMessage, patient: Patient | None, staff: StaffUser | None) -> str | None:
    """Why this recipient must not be texted now (a suppression reason), or None."""
    if row.recipient == "staff":
        if row.staff_id is None and row.to_e164:  # a phone rung of the on-call ladder
            return None
        if staff is None or not staff.active or not staff.mobile_e164:
            return "staff_unreachable"
        return None
    if patient is None:
        return "no_patient"
    if row.recipient == "patient":
        return contact.patient_block(consent=patient.sms_consent, opted_out=patient.sms_opted_out,
                                     number_status=patient.number_status, opt_out_reply=_opt_out_reply(row))
    if row.recipient == "caregiver":
        blocked = contact.caregiver_block(mobile=patient.caregiver_mobile_e164, consent=patient.caregiver_consent,
                                          opted_out=patient.caregiver_opted_out, opt_out_reply=_opt_out_reply(row))
        if blocked is None and "{link}" in row.text_template:
            return "caregiver_no_link"  # a caregiver gets copies, never a key to the patient's own pages
        return blocked
    return "unknown_recipient"


def _opt_out_reply(row: OutboundMessage) -> bool:
    """The one confirmation of an opt-out in the patient's own words (carriers send their own after
    the keyword STOP): planned in the same transaction as the opt-out, sent within
    OPT_OUT_REPLY_WITHIN or never (see the staleness check)."""
    return row.kind == "event_reply" and row.occurrence_key.endswith(OPT_OUT_REPLY_REF)


def _first_name(row: OutboundMessage, patient: Patient | None, staff: StaffUser | None) -> str:
    if row.recipient == "staff":
        return (staff.name.split() or [""])[0] if staff else ""
    if row.recipient == "caregiver" and row.kind == "event_reply" and patient.caregiver_name:
        # A reply to the caregiver's own text greets the caregiver; copies of reminders keep the
        # patient's name so the caregiver knows whom they are about.
        return patient.caregiver_name.split()[0]
    return patient.first_name


def _load(session: Session, ids: list[int]) -> list[tuple[OutboundMessage, Patient | None, Enrolment | None]]:
    """Claimed rows with their patient and enrolment, fresh, in one statement (rows locked on PG)."""
    stmt = (sa.select(OM, Patient, Enrolment)
            .outerjoin(Patient, Patient.id == OM.patient_id)
            .outerjoin(Enrolment, Enrolment.id == OM.enrolment_id)
            .where(OM.id.in_(ids)).order_by(OM.id).execution_options(populate_existing=True))
    if not is_sqlite(session):
        stmt = stmt.with_for_update(of=OM)
    return [tuple(r) for r in session.execute(stmt).all()]


def _done_slots(session: Session, rows: list[OutboundMessage]) -> set[tuple[int, str]]:
    """(enrolment, slot) pairs among these rows' check-in slots that already have a submitted check-in."""
    wanted = {(r.enrolment_id, r.slot) for r in rows if r.kind in CHECKIN_KINDS and r.slot and r.enrolment_id}
    if not wanted:
        return set()
    found = session.execute(sa.select(Checkin.enrolment_id, Checkin.slot).where(
        Checkin.enrolment_id.in_({e for e, _ in wanted}), Checkin.slot.in_({s for _, s in wanted}),
        Checkin.status == CheckinStatus.SUBMITTED)).all()
    return {(e, s) for e, s in found} & wanted


def _waiting_for_opt_in(session: Session, rows: list[OutboundMessage]) -> set[tuple[int, str]]:
    """(enrolment, recipient) pairs among these rows whose opt-in confirmation has not gone yet:
    carriers want it to be the first text a number gets."""
    wanted = {(r.enrolment_id, r.recipient) for r in rows
              if r.enrolment_id and r.recipient != "staff" and not r.occurrence_key.endswith(OPT_IN_REF)}
    if not wanted:
        return set()
    found = session.execute(sa.select(OM.enrolment_id, OM.recipient).where(
        OM.enrolment_id.in_({e for e, _ in wanted}), OM.occurrence_key.like("%" + OPT_IN_REF),
        OM.status.in_((OutboxStatus.PLANNED, OutboxStatus.CLAIMED)))).all()
    return {(e, r) for e, r in found} & wanted


def prepare(session: Session, row_id: int, now: datetime, ctx: SendContext) -> Prepared | NotSent:
    """Re-check one claimed row and render it (commits). Returns what to send, or why not."""
    return prepare_batch(session, [row_id], now, ctx)[0]


def prepare_batch(session: Session, ids: list[int], now: datetime, ctx: SendContext) -> list[Prepared | NotSent]:
    """Re-check and render claimed rows in one transaction, in the order of `ids`. With pacing on,
    the same transaction reserves each row's send slot (see the module docstring)."""
    s = ctx.settings
    with write_unit(session, lock=f"outbox-pacing:{s.sender}" if s.pacing else None):
        loaded = {r[0].id: r for r in _load(session, ids)}
        done = _done_slots(session, [r[0] for r in loaded.values()])
        waiting = _waiting_for_opt_in(session, [r[0] for r in loaded.values()])
        out: list[Prepared | NotSent] = []
        for row_id in ids:
            found = loaded.get(row_id)
            if found is None or found[0].status != OutboxStatus.CLAIMED or found[0].claimed_by != s.worker_id:
                out.append(NotSent("lost_claim"))
                continue
            out.append(_check_and_render(session, *found, now=now, ctx=ctx, done=done, waiting=waiting))
        return out


def _check_and_render(session: Session, row: OutboundMessage, patient: Patient | None, enrolment: Enrolment | None,
                      *, now: datetime, ctx: SendContext, done: set[tuple[int, str]],
                      waiting: set[tuple[int, str]] = frozenset()) -> Prepared | NotSent:
    s = ctx.settings
    staff = session.get(StaffUser, row.staff_id) if row.staff_id else None
    problem = _recipient_problem(row, patient, staff)
    if problem:
        finish_row(session, row, OutboxStatus.SUPPRESSED, problem, now)
        return NotSent(problem)
    if enrolment is not None and enrolment.status != EnrolmentStatus.ACTIVE:
        finish_row(session, row, OutboxStatus.CANCELLED, "enrolment_ended", now)
        return NotSent("enrolment_ended")
    if enrolment is not None and held_by_pause(enrolment.paused_until, now, recipient=row.recipient, kind=row.kind):
        finish_row(session, row, OutboxStatus.CANCELLED, "paused", now)  # routine texts are held, not sent late
        return NotSent("paused")
    if row.recipient == "staff":
        alert = session.get(Alert, row.alert_id) if row.alert_id else None
        if alert is not None and alert.status != AlertStatus.OPEN:
            finish_row(session, row, OutboxStatus.CANCELLED, "alert_acknowledged", now)
            return NotSent("alert_acknowledged")
    elif (row.enrolment_id, row.slot) in done:
        finish_row(session, row, OutboxStatus.CANCELLED, "checkin_done", now)
        return NotSent("checkin_done")
    if row.recipient != "staff":
        tz = ZoneInfo(patient.timezone)
        quiet = ctx.quiet_hours(session, enrolment, safety=row.safety)
        # Late counts from when the text could first go: its due time, or when it was planned if
        # that was later (a late enrolment sends a due safety text at once).
        first_chance = max(row.due_at, row.created_at)
        planned = first_chance if row.urgent else next_allowed_send(first_chance, tz, quiet)
        if row.status_reason == "quiet_hours":
            # Deferred by quiet hours earlier: late only from the end of that quiet period.
            planned = max(planned, last_quiet_end(now, tz, quiet))
        stale_after = STALE_AFTER.get(row.kind)
        if row.occurrence_key.endswith(OPT_OUT_REPLY_REF):
            stale_after = OPT_OUT_REPLY_WITHIN
        if stale_after is not None and now - planned > stale_after:
            finish_row(session, row, OutboxStatus.SUPPRESSED, "stale", now)
            return NotSent("stale")
        if not row.urgent:
            allowed = next_allowed_send(now, tz, quiet)
            if allowed > now:
                release_row(row, allowed, "quiet_hours", now, attempt_made=False)
                return NotSent("quiet_hours")
        if (row.enrolment_id, row.recipient) in waiting and not row.occurrence_key.endswith(OPT_IN_REF):
            hold = _opt_in_hold(row, now, tz, quiet, s)
            if hold is not None:
                release_row(row, now + hold, "after_opt_in", now, attempt_made=False)
                return NotSent("after_opt_in")
    try:
        body, stored = _render(session, row, patient, staff, now, ctx, enrolment)
    except ValueError:
        fail_row(session, row, now, reason="render_error", code=None)
        log.error("outbox row %d (%s): its text template cannot be rendered", row.id, row.message_id)
        return NotSent("render_error")
    row.body, row.updated_at = stored, now
    size = sms_encoding.count(body)
    row.segments, row.encoding = size.count, size.encoding
    if size.count > 1:  # still sent (a safety text must not be dropped), but it costs and may split
        log.warning("%s (row %d) is %d %s units: %d SMS segments", row.message_id, row.id, size.units,
                    size.encoding, size.count)
    slot = reserve_slot(session, row, now, s) if s.pacing else now
    if row.recipient == "staff":
        to = staff.mobile_e164 if staff is not None else row.to_e164
    else:
        to = patient.caregiver_mobile_e164 if row.recipient == "caregiver" else patient.mobile_e164
    clinic_id = patient.clinic_id if patient is not None else row.clinic_id or (staff.clinic_id if staff else None)
    return Prepared(id=row.id, to=to, body=body, message_id=row.message_id, slot=slot,
                    status_callback=f"{s.public_base_url}/twilio/status?ob={row.id}",
                    sender=ctx.sender(session, clinic_id) if clinic_id is not None else None)


def _opt_in_hold(row: OutboundMessage, now: datetime, tz: ZoneInfo, quiet: tuple,
                 s: DispatchSettings) -> timedelta | None:
    """How long a text waits for its recipient's opt-in confirmation, still pending (a retry,
    another process), or None: send it now. A routine text waits OPT_IN_WAIT at a time. A text that
    must not wait (a safety text such as S01 "tonight", an urgent reply) waits once, for one tick,
    and not at all when that would take it into its quiet hours (S01 at 22:59 must not go at 08:00)."""
    if not (row.safety or row.urgent):
        return OPT_IN_WAIT
    if row.status_reason == "after_opt_in":
        return None
    hold = min(OPT_IN_WAIT, timedelta(seconds=s.tick_seconds))
    if not row.urgent and next_allowed_send(now + hold, tz, quiet) > now + hold:
        return None
    return hold


def last_quiet_end(now: datetime, tz: ZoneInfo, quiet: tuple) -> datetime:
    """The most recent end of quiet hours (08:00 local) at or before `now`."""
    end = quiet[1] if isinstance(quiet[1], dt_time) else parse_clock(quiet[1])
    local = now.astimezone(tz)
    candidate = local_to_utc(local.date(), end, tz)
    return candidate if candidate <= now else local_to_utc(local.date() - timedelta(days=1), end, tz)


def _render(session: Session, row: OutboundMessage, patient: Patient | None, staff: StaffUser | None,
            now: datetime, ctx: SendContext, enrolment: Enrolment | None = None) -> tuple[str, str]:
    """(body to send, body to store): the stored one has the link token replaced by [link]."""
    s = ctx.settings
    link = stored_link = ""
    if "{link}" in row.text_template:
        if row.recipient == "staff":
            link = stored_link = f"{s.public_base_url}/nurse/"
        else:
            if row.kind in CHECKIN_KINDS:
                purpose, slot, ttl = "checkin", row.slot, s.checkin_link_ttl
            elif row.message_id in CHECKIN_LINK_REPLIES:
                purpose, slot, ttl = "checkin", None, s.checkin_link_ttl
            else:
                purpose, slot, ttl = "today", None, s.today_link_ttl
            token = issue_link(session, patient, purpose, now, ttl, checkin_slot=slot)
            link = f"{s.public_base_url}/l/{token}"
            stored_link = f"{s.public_base_url}/l/{LINK_PLACEHOLDER_STORED}"
    emerg, phone = ctx.contact(session, patient.clinic_id) if patient is not None else ("", "")
    first = _first_name(row, patient, staff)
    clinic = ctx.sms_name(session, enrolment) if "{clinic}" in row.text_template else ""
    body = texts.render(row.text_template, first=first, link=link, emerg=emerg, phone=phone, clinic=clinic)
    stored = texts.render(row.text_template, first=first, link=stored_link, emerg=emerg, phone=phone,
                          clinic=clinic)
    return body, stored


def preview(session: Session, row: OutboundMessage, public_base_url: str) -> str:
    """A planned text as it will read, with its link shown as stored ([link]); issues no link."""
    patient = session.get(Patient, row.patient_id) if row.patient_id else None
    staff = session.get(StaffUser, row.staff_id) if row.staff_id else None
    clinic = session.get(Clinic, patient.clinic_id) if patient is not None else None
    link = f"{public_base_url.rstrip('/')}/l/{LINK_PLACEHOLDER_STORED}"
    return texts.render(row.text_template, first=_first_name(row, patient, staff), link=link,
                        emerg=clinic.emergency_number if clinic else "", phone=clinic.care_phone if clinic else "")
