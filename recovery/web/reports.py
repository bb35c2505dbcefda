"""The clinic dashboard at /nurse/reports (issue 16): nurses and admins of the signed-in clinic.

The period comes from a GET form (from/to, the clinic's local days; default the last 30). Every
table has a one-click CSV; the one that names patients writes a PHI-read audit row per patient.
"""
from __future__ import annotations

import csv
import io
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, abort, current_app, g, render_template, request
from flask_login import current_user

from recovery.clock import utcnow
from recovery.domain import reports as rules
from recovery.files import instruments
from recovery.services import reports as usecase
from recovery.store.db import begin_write, db
from recovery.store.models import Clinic
from recovery.web.access import staff_required

bp = Blueprint("reports", __name__, url_prefix="/nurse/reports")

TABLES = ("adherence", "missed", "alerts", "escalations", "texts", "opt_outs", "pain", "peg")
PHI_TABLES = {"missed"}


@bp.before_request
def _signed_in():
    begin_write(db.session)  # the staff session touch (and a PHI export's audit rows) write
    return _staff_only()


@staff_required
def _staff_only():
    g.clinic = db.session.get(Clinic, current_user.clinic_id)
    return None


def _period():
    tz = ZoneInfo(g.clinic.timezone)
    today = utcnow().astimezone(tz).date()
    return rules.parse_period(request.args.get("from"), request.args.get("to"), today=today, tz=tz)


def _peg():
    return instruments.peg(current_app.config["SCHEDULES_DIR"])


@bp.get("")
def dashboard():
    parsed = _period()
    if parsed.period is None:
        return render_template("nurse/reports.html", parsed=parsed, data=None,
                               labels=rules.OUTCOME_LABELS, failure_labels=rules.FAILURE_LABELS), 422
    data = usecase.dashboard(db.session, g.clinic.id, parsed.period, _peg())
    return render_template("nurse/reports.html", parsed=parsed, data=data,
                           labels=rules.OUTCOME_LABELS, failure_labels=rules.FAILURE_LABELS)


def _cell(value) -> str:
    """A CSV cell a spreadsheet will not run as a formula (OWASP CSV injection)."""
    text = "" if value is None else (f"{value:.1f}" if isinstance(value, float) else str(value))
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _rows(table: str, data: usecase.Dashboard) -> list[list]:
    if table == "adherence":
        head = ["recovery_day", "invited", *rules.OUTCOMES]
        body = [[day, c["invited"], *(c[k] for k in rules.OUTCOMES)] for day, c in data.adherence_by_day.items()]
        t = data.adherence_total
        return [head, *body, ["all", t["invited"], *(t[k] for k in rules.OUTCOMES)]]
    if table == "missed":
        return [["patient_id", "patient", "longest_run", "current_run", "last_missed_utc"],
                *[[m.patient_id, m.name, m.longest, m.current, m.last_missed.isoformat()] for m in data.missed_runs]]
    if table == "alerts":
        return [["level", "response_time", "opened", "acknowledged", "acknowledged_in_time", "resolved",
                 "escalated", "ack_median_min", "ack_p90_min", "resolve_median_min", "resolve_p90_min",
                 "opened_outside_service_hours", "opened_with_service_hours_set"],
                *[[r.level, r.target, r.opened, r.acknowledged, r.in_time, r.resolved, r.escalated, r.ack.median,
                   r.ack.p90, r.resolve.median, r.resolve.p90,
                   rules.NO_SERVICE_HOURS if r.opened and not r.hours_set else r.outside_hours, r.hours_set]
                  for r in data.alerts]]
    if table == "escalations":
        return [["rung", "on_call_now", "alerts"], *[list(e) for e in data.escalations]]
    if table == "texts":
        t = data.texts
        return [["measure", "count"], ["sent", t.sent], ["delivered", t.delivered], ["failed", t.failed],
                *[[f"failed_{k}", n] for k, n in t.by_reason.items()]]
    if table == "opt_outs":
        return [["week_starting", "opt_outs"], *[[w.isoformat(), n] for w, n in data.texts.opt_outs]]
    if table == "peg":
        c = data.peg
        return [["measure", "value"], ["patients_with_baseline_and_6_weeks", c.patients],
                ["median_baseline_score", c.median_baseline], ["median_6_week_score", c.median_week6],
                ["median_change", c.median_change], ["baseline_above_0", c.measurable],
                [f"improved_{c.threshold_percent:g}_percent_or_more", c.improved], ["share_improved", c.improved_share]]
    return [["recovery_day", "checkins", "p25", "median", "p75"],
            *[[b.day, b.n, b.p25, b.median, b.p75] for b in data.pain]]


@bp.get("/export.csv")
def export():
    table = request.args.get("table", "")
    if table not in TABLES:
        abort(404)
    parsed = _period()
    if parsed.period is None:
        return Response("; ".join(f"{k}: {v}" for k, v in parsed.errors.items()) + "\n", 422,
                        mimetype="text/plain")
    data = usecase.dashboard(db.session, g.clinic.id, parsed.period, _peg())
    if table in PHI_TABLES:
        usecase.audit_patient_list_export(db.session, staff_id=current_user.staff.id, period=parsed.period,
                                          patient_ids=[m.patient_id for m in data.missed_runs], now=utcnow(),
                                          request_id=g.get("request_id"))
    db.session.commit()
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    for row in _rows(table, data):
        writer.writerow([_cell(v) for v in row])
    name = f"{table}_{parsed.period.start.isoformat()}_{parsed.period.end.isoformat()}.csv"
    resp = Response(buf.getvalue(), mimetype="text/csv")
    resp.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return resp
