"""PEG outcome answers (issue 16): which check-in asks which time point, storing the patient's
answers screen by screen and the nurse's baseline, the patient page's summary and the cohort's
change from baseline to 6 weeks.

PEG answers live in their own table (PegAnswer) and are never merged into a check-in's answers:
nothing here calls the triage rules, and nothing in recovery/services/checkins.py reads them.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased

from recovery.domain import peg as rules
from recovery.domain.quantiles import quantile
from recovery.domain.reports import Period
from recovery.services.checkins import SOURCE_WEB, Setting, planned_for_slot
from recovery.services.enrolment import timeline_for
from recovery.store import audit
from recovery.store.models import Enrolment, Patient, PegAnswer

SOURCE_PATIENT, SOURCE_NURSE = "patient", "nurse"


class AlreadyRecorded(Exception):
    """That time point already has a complete PEG: it is not overwritten."""


def _row(session: Session, enrolment_id: int, point: str) -> PegAnswer | None:
    return session.scalar(sa.select(PegAnswer).where(PegAnswer.enrolment_id == enrolment_id,
                                                     PegAnswer.point == point))


def _values(row: PegAnswer | None) -> dict[str, int]:
    if row is None:
        return {}
    return {i: getattr(row, i) for i in rules.ITEM_IDS if getattr(row, i) is not None}


# ---------------------------------------------------------------------------------------------
# The patient's screens in a check-in
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Ask:
    """The PEG screens of one check-in: its time point and the answers given in it so far."""
    point: str
    instrument: rules.Instrument
    language: str
    answers: Mapping[str, int] = field(default_factory=dict)

    @property
    def screens(self) -> tuple[str, ...]:
        return tuple(rules.screen_id(i) for i in rules.ITEM_IDS)

    @property
    def pairs(self) -> tuple[tuple[str, str], ...]:
        """(screen id, item id) in order."""
        return tuple((rules.screen_id(i), i) for i in rules.ITEM_IDS)

    @property
    def complete(self) -> bool:
        return all(i in self.answers for i in rules.ITEM_IDS)

    def next_screen(self, after: str | None = None) -> str | None:
        """The screen after `after` still unanswered (then any earlier one); None when all are."""
        start = self.screens.index(after) + 1 if after in self.screens else 0
        for s in self.screens[start:] + self.screens[:start]:
            if rules.item_of_screen(s) not in self.answers:
                return s
        return None

    def before(self, screen: str) -> str | None:
        i = self.screens.index(screen)
        return self.screens[i - 1] if i > 0 else None


def ask_for(session: Session, setting: Setting, instrument: rules.Instrument) -> Ask | None:
    """The PEG time point this web check-in asks, with what was answered in it, or None (a symptom
    report, a text check-in, a check-in on another day, or that point answered elsewhere)."""
    checkin = setting.checkin
    if checkin.slot is None or checkin.source != SOURCE_WEB:
        return None
    timeline = timeline_for(setting.enrolment, setting.patient, setting.template)
    planned = planned_for_slot(timeline, checkin.slot)
    where = dict(scheduled_day=planned.day if planned else None, planned_days=[c.day for c in timeline.checkins],
                 started_day=setting.day)
    # Points already answered only ever take a point away: a check-in that would ask none with
    # nothing answered asks none (most of them), and its page needs no statement for it.
    if rules.point_for_checkin(instrument, **where, done=frozenset()) is None:
        return None
    rows = session.scalars(sa.select(PegAnswer).where(PegAnswer.enrolment_id == setting.enrolment.id)).all()
    done = {r.point for r in rows if r.completed_at is not None and r.checkin_id != checkin.id}
    point = rules.point_for_checkin(instrument, **where, done=done)
    if point is None:
        return None
    mine = next((r for r in rows if r.point == point and r.checkin_id == checkin.id), None)
    return Ask(point, instrument, instrument.language(setting.patient.language), _values(mine))


def record_item(session: Session, setting: Setting, ask: Ask, item_id: str, value: int, *,
                now: datetime, request_id: str | None = None) -> Ask:
    """Store one answer of the check-in's PEG (its row is created on the first one). A row another
    check-in left unfinished is taken over and emptied: its past week is not this one."""
    if item_id not in rules.ITEM_IDS or not ask.instrument.minimum <= value <= ask.instrument.maximum:
        raise ValueError(f"not a PEG answer: {item_id}={value!r}")
    checkin, patient = setting.checkin, setting.patient
    row = _row(session, setting.enrolment.id, ask.point)
    if row is None:
        row = PegAnswer(enrolment_id=setting.enrolment.id, patient_id=patient.id, point=ask.point,
                        source=SOURCE_PATIENT, checkin_id=checkin.id, instrument_version=ask.instrument.version,
                        language=ask.language, created_at=now, updated_at=now)
        try:
            with session.begin_nested():
                session.add(row)
                session.flush()
        except sa.exc.IntegrityError:  # the nurse (or another tab) wrote this point just now
            row = _row(session, setting.enrolment.id, ask.point)
    if row.checkin_id != checkin.id:
        if row.completed_at is not None:
            return ask  # answered elsewhere meanwhile: kept as it is
        for i in rules.ITEM_IDS:
            setattr(row, i, None)
        row.checkin_id, row.source, row.staff_id = checkin.id, SOURCE_PATIENT, None
        row.instrument_version, row.language = ask.instrument.version, ask.language
    before = _values(row)
    setattr(row, item_id, value)
    row.updated_at = now
    after = _values(row)
    if rules.total(after) is not None and after != before:
        row.completed_at = row.completed_at or now
        _audit(session, row, actor_type="patient", actor_id=patient.id, now=now, request_id=request_id)
    return Ask(ask.point, ask.instrument, ask.language, after)


def _audit(session: Session, row: PegAnswer, *, actor_type: str, actor_id: int | None, now: datetime,
           request_id: str | None) -> None:
    session.flush()
    audit.record(session, at=now, actor_type=actor_type, actor_id=actor_id, action="peg_recorded",
                 patient_id=row.patient_id, subject_type="peg_answer", subject_id=row.id,
                 detail={"point": row.point, "source": row.source, "version": row.instrument_version,
                         "checkin": row.checkin_id, "score": rules.score(_values(row))},
                 request_id=request_id)


# ---------------------------------------------------------------------------------------------
# The nurse's baseline
# ---------------------------------------------------------------------------------------------

def record_baseline(session: Session, *, enrolment: Enrolment, staff, values: Mapping[str, int],
                    instrument: rules.Instrument, now: datetime, request_id: str | None = None) -> PegAnswer:
    """The baseline PEG as the nurse entered it (all three items). Raises AlreadyRecorded when a
    complete baseline exists (the patient's or a nurse's); an unfinished one of the patient is
    replaced."""
    if set(values) != set(rules.ITEM_IDS):
        raise ValueError("the baseline needs all three PEG items")
    row = _row(session, enrolment.id, "baseline")
    if row is not None and row.completed_at is not None:
        raise AlreadyRecorded()
    if row is None:
        row = PegAnswer(enrolment_id=enrolment.id, patient_id=enrolment.patient_id, point="baseline", created_at=now)
        session.add(row)
    row.source, row.checkin_id, row.staff_id = SOURCE_NURSE, None, staff.id
    row.instrument_version, row.language = instrument.version, "en"  # the nurse reads it out in English
    for i in rules.ITEM_IDS:
        setattr(row, i, int(values[i]))
    row.updated_at = row.completed_at = now
    _audit(session, row, actor_type="staff", actor_id=staff.id, now=now, request_id=request_id)
    return row


# ---------------------------------------------------------------------------------------------
# The patient page
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PointLine:
    point: str
    label: str
    values: Mapping[str, int] | None  # None: not answered (yet)
    score: float | None
    change: float | None  # score points from baseline (negative is better)
    percent: float | None  # change in % of the baseline score
    improved: bool | None  # fell by at least the instrument's fraction
    at: datetime | None
    source: str | None


@dataclass(frozen=True)
class Summary:
    lines: tuple[PointLine, ...]
    instrument: rules.Instrument

    @property
    def baseline_missing(self) -> bool:
        return self.lines[0].values is None

    def short(self, item_id: str) -> str:
        return self.instrument.wording(item_id).short


def summary(session: Session, enrolment: Enrolment, instrument: rules.Instrument) -> Summary:
    """Baseline, day 14 and 6 weeks as answered in full, with the change from baseline."""
    rows = {r.point: r for r in session.scalars(sa.select(PegAnswer).where(
        PegAnswer.enrolment_id == enrolment.id, PegAnswer.completed_at.is_not(None))).all()}
    base_total = rules.total(_values(rows.get("baseline")))
    lines = []
    for pid in rules.POINTS:
        row, label = rows.get(pid), instrument.points[pid].label
        if row is None:
            lines.append(PointLine(pid, label, None, None, None, None, None, None, None))
            continue
        values = _values(row)
        t = rules.total(values)
        comparable = pid != "baseline" and base_total is not None and t is not None
        lines.append(PointLine(
            pid, label, values, rules.score(values),
            (t - base_total) / len(rules.ITEM_IDS) if comparable else None,
            rules.percent_change(base_total, t) if comparable else None,
            rules.improved(base_total, t, instrument.improved_fraction) if comparable else None,
            row.completed_at, row.source))
    return Summary(tuple(lines), instrument)


# ---------------------------------------------------------------------------------------------
# The clinic dashboard
# ---------------------------------------------------------------------------------------------

def _total(row) -> sa.ColumnElement:
    return row.pain + row.enjoyment + row.activity


def cohort(session: Session, clinic_id: int, period: Period, instrument: rules.Instrument) -> rules.Cohort:
    """Patients of the clinic whose 6-week PEG was completed in the period and who have a complete
    baseline: the counts (patients, measurable, improved by the instrument's fraction) are SQL
    window aggregates over the pairs, in the one statement that fetches the pairs' totals for the
    medians (SQLite has no median)."""
    b, w = aliased(PegAnswer), aliased(PegAnswer)
    bt, wt = _total(b), _total(w)
    num, den = instrument.improved_fraction.numerator, instrument.improved_fraction.denominator
    measurable = sa.case((bt > 0, 1), else_=0)
    better = sa.case((sa.and_(bt > 0, (bt - wt) * den >= bt * num), 1), else_=0)
    rows = session.execute(
        sa.select(bt, wt, sa.func.sum(measurable).over(), sa.func.sum(better).over())
        .select_from(w)
        .join(b, sa.and_(b.enrolment_id == w.enrolment_id, b.point == "baseline"))
        .join(Enrolment, Enrolment.id == w.enrolment_id)
        .join(Patient, Patient.id == Enrolment.patient_id)
        .where(Patient.clinic_id == clinic_id, w.point == "week6", w.completed_at.is_not(None),
               b.completed_at.is_not(None), bt.is_not(None), wt.is_not(None), w.completed_at >= period.start_utc,
               w.completed_at < period.end_utc)).all()
    n_items = len(rules.ITEM_IDS)
    base = sorted(r[0] / n_items for r in rows)
    later = sorted(r[1] / n_items for r in rows)
    change = sorted((r[1] - r[0]) / n_items for r in rows)
    return rules.Cohort(patients=len(rows), median_baseline=quantile(base, 0.5), median_week6=quantile(later, 0.5),
                        median_change=quantile(change, 0.5), measurable=int(rows[0][2]) if rows else 0,
                        improved=int(rows[0][3]) if rows else 0,
                        threshold_percent=float(instrument.improved_fraction * 100))
