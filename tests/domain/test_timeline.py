"""The timeline engine over the default template: every milestone and text, DST, quiet hours, replan.

Expected times are worked out by hand from protocol.md §1/§2.3 and the 2026 DST dates:
US 8 Mar (02:00→03:00) / 1 Nov (02:00→01:00); UK 29 Mar (01:00→02:00) / 25 Oct (02:00→01:00);
Sydney 5 Apr (03:00→02:00) / 4 Oct (02:00→03:00).
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from recovery.domain.plan.errors import OverrideError
from recovery.domain.plan.overrides import Overrides
from recovery.files.plans import load_template
from recovery.domain.timeline import (
    LATE_GRACE, TimelineError, active_restrictions, build_timeline,
    in_quiet_hours, local_to_utc, next_allowed_send, next_milestones, plan_reply, progress, replan,
)

UTC = timezone.utc
TEMPLATE_PATH = Path(__file__).resolve().parents[2] / "schedules" / "kyphoplasty_v1.toml"
NY = ZoneInfo("America/New_York")
US_ZONES = ["America/New_York", "America/Chicago", "America/Denver", "America/Phoenix",
            "America/Los_Angeles", "America/Anchorage", "Pacific/Honolulu"]


@pytest.fixture(scope="module")
def template():
    return load_template(TEMPLATE_PATH)


def build(template, t0_local: str, zone: str = "America/New_York", *, discharge_local: str | None = None,
          overrides: Overrides | None = None, now: datetime | None = None):
    tz = ZoneInfo(zone)
    t0 = datetime.fromisoformat(t0_local).replace(tzinfo=tz)
    td = datetime.fromisoformat(discharge_local).replace(tzinfo=tz) if discharge_local else None
    return build_timeline(template, procedure_end=t0, discharge=td, tz=tz,
                          overrides=overrides or Overrides(), now=now)


def local(tl, instant: datetime) -> str:
    return tl.local(instant).strftime("%Y-%m-%d %H:%M")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


ALL_FLAGS = Overrides(working=True, brace=True)

# ---------------------------------------------------------------------------------------------
# Every milestone and every text, on an ordinary (non-DST) day: T0 Wed 10 Jun 2026 10:00 EDT
# ---------------------------------------------------------------------------------------------

EXPECTED_MILESTONES = {  # id: (starts, ends) local New York
    "TL01": ("2026-06-10 10:00", "2026-06-10 12:00"),  # T0 → TD (T0 + 2 h default)
    "TL02": ("2026-06-10 12:00", "2026-06-11 09:00"),  # TD → next morning 09:00
    "TL03": ("2026-06-10 10:00", "2026-06-12 10:00"),  # 48 h no driving / public transport
    "TL04": ("2026-06-10 10:00", "2026-06-11 10:00"),
    "TL05": ("2026-06-10 10:00", "2026-06-12 10:00"),
    "TL06": ("2026-06-10 10:00", "2026-06-13 10:00"),
    "TL07": ("2026-06-11 10:00", "2026-06-12 10:00"),
    "TL08": ("2026-06-10 10:00", "2026-07-22 10:00"),  # until the follow-up visit
    "TL09": ("2026-06-12 10:00", "2026-06-12 10:00"),
    "TL10": ("2026-06-10 11:00", "2026-07-22 10:00"),
    "TL11": ("2026-06-10 12:00", "2026-07-22 10:00"),
    "TL12": ("2026-06-12 10:00", "2026-06-13 10:00"),  # sedentary work after 2-3 days
    "TL13": ("2026-06-17 10:00", "2026-06-17 10:00"),  # daily activities at about 1 week
    "TL14": ("2026-06-10 10:00", "2026-07-22 10:00"),  # no heavy lifting for 6 weeks
    "TL15": ("2026-06-10 12:00", "2026-07-22 10:00"),
    "TL16": ("2026-07-22 10:00", "2026-07-22 10:00"),  # follow-up at 6 weeks
    "TL17": ("2026-06-12 10:00", "2026-06-17 10:00"),
    "TL18": ("2026-07-15 09:00", "2026-07-22 10:00"),
    "TL19": ("2026-06-10 10:00", "2026-07-22 10:00"),
    "TL20": ("2026-06-10 12:00", "2026-07-22 10:00"),
    "TL21": ("2026-06-10 10:00", "2026-07-22 10:00"),
}

EXPECTED_MESSAGES = {  # occurrence key: local New York send time
    "S01:TD": "2026-06-10 12:00",
    "S02:TD+1h": "2026-06-10 13:00", "S02:day1": "2026-06-11 09:00", "S02:day2": "2026-06-12 09:00",
    "S03:day0": "2026-06-10 19:00", "S03:day1": "2026-06-11 09:00",
    "S04:TD+1h": "2026-06-10 13:00",
    "S05:TD+2h": "2026-06-10 14:00",
    "S06:day0": "2026-06-10 16:00",  # T0+6h (later than TD+2h = 14:00)
    **{f"S06:day{d}": f"2026-06-{10 + d} 09:00" for d in range(1, 8)},
    "S06:day10": "2026-06-20 09:00",
    "S07:day0": "2026-06-10 20:00",  # +4 h
    **{f"S07:day{d}": f"2026-06-{10 + d} 13:00" for d in range(1, 8)},
    "S07:day10": "2026-06-21 09:00",  # +24 h after day-10 and weekly invites
    "S07:day14": "2026-06-25 09:00", "S07:day21": "2026-07-02 09:00", "S07:day28": "2026-07-09 09:00",
    "S07:day35": "2026-07-16 09:00", "S07:day42": "2026-07-23 09:00",
    "S08:first>=T0+24h": "2026-06-12 09:00",  # T0+24h = 11 Jun 10:00 → next 09:00
    "S09:day1": "2026-06-11 09:00",
    "S10:first>=T0+48h": "2026-06-13 09:00",  # T0+48h = 12 Jun 10:00 → next 09:00
    "S11:first>=T0+48h": "2026-06-13 09:00",
    "S12:day2": "2026-06-12 09:00",
    "S13:day7": "2026-06-17 09:00",
    "S14:day14": "2026-06-24 09:00", "S14:day21": "2026-07-01 09:00", "S14:day28": "2026-07-08 09:00",
    "S14:day35": "2026-07-15 09:00", "S14:day42": "2026-07-22 09:00",
    "S15:day1": "2026-06-11 09:00", "S15:day7": "2026-06-17 09:00", "S15:day14": "2026-06-24 09:00",
    "S15:day21": "2026-07-01 09:00", "S15:day28": "2026-07-08 09:00", "S15:day35": "2026-07-15 09:00",
    "S16:TL16-7d": "2026-07-15 09:00",
    "S17:TL16-1d": "2026-07-21 09:00",
    "S18:TL16-7d": "2026-07-15 09:00",  # = day 35 with the 6-week follow-up
}


def test_every_milestone_of_the_default_template(template):
    tl = build(template, "2026-06-10T10:00", overrides=ALL_FLAGS)
    got = {m.id: (local(tl, m.starts_at), local(tl, m.ends_at)) for m in tl.milestones}
    assert got == EXPECTED_MILESTONES
    assert {m.id for m in tl.milestones if m.restriction} == {"TL02", "TL03", "TL08", "TL14"}
    assert tl.milestone("TL16").all_day and tl.milestone("TL16").point
    assert tl.horizon_end == tl.milestone("TL21").ends_at


def test_every_scheduled_text_of_the_default_template(template):
    tl = build(template, "2026-06-10T10:00", overrides=ALL_FLAGS)
    got = {m.key: local(tl, m.send_at) for m in tl.messages}
    assert got == EXPECTED_MESSAGES
    assert not any(m.quiet_moved for m in tl.messages)
    assert [m.send_at for m in tl.messages] == sorted(m.send_at for m in tl.messages)
    kinds = {m.id: m.kind for m in tl.messages}
    assert kinds["S06"] == kinds["S14"] == "checkin_invite" and kinds["S07"] == "checkin_reminder"
    assert all(not m.urgent for m in tl.messages)
    assert tl.messages[0].text_template == template.message("S01").text


def test_check_in_slots_follow_the_cadence(template):
    tl = build(template, "2026-06-10T10:00")
    assert [(c.slot, c.group) for c in tl.checkins] == (
        [("day0", "day0")] + [(f"day{d}", "daily") for d in range(1, 8)] + [("day10", "day10")]
        + [(f"day{d}", "weekly") for d in (14, 21, 28, 35, 42)])
    day3 = next(c for c in tl.checkins if c.slot == "day3")
    assert (local(tl, day3.invite.send_at), local(tl, day3.reminder.send_at), local(tl, day3.missed_at)) == (
        "2026-06-13 09:00", "2026-06-13 13:00", "2026-06-13 17:00")  # protocol §4 V25/V26 timings
    day21 = next(c for c in tl.checkins if c.slot == "day21")
    assert local(tl, day21.missed_at) == "2026-07-03 09:00"  # weekly: +48 h (M3)


def test_event_replies_S19_to_S23(template):
    late = datetime(2026, 6, 10, 23, 30, tzinfo=NY)
    for sid in ("S19", "S20", "S21"):  # answer something the patient just did: sent at once, even at night
        reply = plan_reply(template, sid, event_at=late, tz=NY, ref="checkin-7")
        assert (reply.key, reply.send_at, reply.urgent, reply.quiet_moved) == (f"{sid}:checkin-7", late, True, False)
    s22 = plan_reply(template, "S22", event_at=late, tz=NY, ref="c1")
    assert s22.send_at == datetime(2026, 6, 11, 8, 0, tzinfo=NY) and s22.quiet_moved
    s23 = plan_reply(template, "S23", event_at=datetime(2026, 6, 10, 10, 0, tzinfo=NY), tz=NY, ref="c2")
    assert s23.due_at == s23.send_at == datetime(2026, 6, 10, 14, 0, tzinfo=NY)  # re-measure after 4 h
    s23_evening = plan_reply(template, "S23", event_at=datetime(2026, 6, 10, 18, 0, tzinfo=NY), tz=NY, ref="c3")
    assert s23_evening.send_at == datetime(2026, 6, 11, 8, 0, tzinfo=NY)
    with pytest.raises(ValueError, match="S06 is a checkin_invite"):
        plan_reply(template, "S06", event_at=late, tz=NY, ref="x")


def test_every_text_id_is_covered(template):
    tl = build(template, "2026-06-10T10:00", overrides=ALL_FLAGS)
    planned = {m.id for m in tl.messages}
    replies = {m.id for m in template.messages if m.kind == "event_reply"}
    assert planned | replies == {f"S{i:02d}" for i in range(1, 28)}
    assert replies == {"S19", "S20", "S21", "S22", "S23", "S24", "S25", "S26", "S27"}  # S24-S27: SMS dialogue


def test_opt_in_texts_and_milestones_need_the_profile_flag(template):
    tl = build(template, "2026-06-10T10:00")
    assert not {"S12", "S15"} & {m.id for m in tl.messages}
    assert not {"TL12", "TL15"} & {m.id for m in tl.milestones}
    tl = build(template, "2026-06-10T10:00", overrides=Overrides(working=True))
    assert "S12" in {m.id for m in tl.messages} and "S15" not in {m.id for m in tl.messages}


# ---------------------------------------------------------------------------------------------
# DST: hand-computed instants in UTC
# ---------------------------------------------------------------------------------------------

DST_CASES = [
    # zone, T0 local, {what: expected UTC}
    ("America/New_York", "2026-03-07T10:00", {  # EST, UTC-5 → EDT from 8 Mar
        "T0": "2026-03-07T15:00", "TL03.end": "2026-03-09T15:00",  # 48 h = 11:00 EDT (wall 49 h)
        "S06:day1": "2026-03-08T13:00",  # 09:00 EDT on the change day
        "S10:first>=T0+48h": "2026-03-10T13:00", "TL13": "2026-03-14T14:00",  # 10:00 EDT
        "TL16": "2026-04-18T14:00"}),
    ("America/New_York", "2026-10-31T10:00", {  # EDT, UTC-4 → EST from 1 Nov
        "T0": "2026-10-31T14:00", "TL03.end": "2026-11-02T14:00",  # = 09:00 EST (wall 47 h)
        "S06:day1": "2026-11-01T14:00",  # 09:00 EST
        "S10:first>=T0+48h": "2026-11-02T14:00",  # T0+48h is exactly 09:00 EST: "at or after" keeps it
        "TL13": "2026-11-07T15:00", "TL16": "2026-12-12T15:00"}),
    ("Europe/London", "2026-03-28T14:00", {  # GMT → BST from 29 Mar
        "T0": "2026-03-28T14:00", "TL03.end": "2026-03-30T14:00",  # 15:00 BST
        "S06:day1": "2026-03-29T08:00", "S10:first>=T0+48h": "2026-03-31T08:00",
        "TL13": "2026-04-04T13:00", "TL16": "2026-05-09T13:00"}),
    ("Europe/London", "2026-10-24T14:00", {  # BST → GMT from 25 Oct
        "T0": "2026-10-24T13:00", "TL03.end": "2026-10-26T13:00",  # 13:00 GMT
        "S06:day1": "2026-10-25T09:00", "S10:first>=T0+48h": "2026-10-27T09:00",
        "TL13": "2026-10-31T14:00", "TL16": "2026-12-05T14:00"}),
    ("Australia/Sydney", "2026-04-04T10:00", {  # AEDT +11 → AEST +10 from 5 Apr
        "T0": "2026-04-03T23:00", "TL03.end": "2026-04-05T23:00",  # 09:00 AEST on 6 Apr
        "S06:day1": "2026-04-04T23:00",  # 09:00 AEST on 5 Apr
        "S10:first>=T0+48h": "2026-04-05T23:00",  # T0+48h is exactly 09:00 local
        "TL13": "2026-04-11T00:00", "TL16": "2026-05-16T00:00"}),
    ("Australia/Sydney", "2026-10-03T10:00", {  # AEST +10 → AEDT +11 from 4 Oct
        "T0": "2026-10-03T00:00", "TL03.end": "2026-10-05T00:00",  # 11:00 AEDT
        "S06:day1": "2026-10-03T22:00",  # 09:00 AEDT on 4 Oct
        "S10:first>=T0+48h": "2026-10-05T22:00",
        "TL13": "2026-10-09T23:00", "TL16": "2026-11-13T23:00"}),
]


@pytest.mark.parametrize("zone,t0,expected", DST_CASES, ids=[f"{c[0]}-{c[1][:10]}" for c in DST_CASES])
def test_dst_changes_hand_computed(template, zone, t0, expected):
    tl = build(template, t0, zone)
    messages = {m.key: m.send_at for m in tl.messages}
    got = {"T0": tl.procedure_end, "TL03.end": tl.milestone("TL03").ends_at,
           "S06:day1": messages["S06:day1"], "S10:first>=T0+48h": messages["S10:first>=T0+48h"],
           "TL13": tl.milestone("TL13").starts_at, "TL16": tl.milestone("TL16").starts_at}
    assert got == {k: utc(v) for k, v in expected.items()}
    for m in tl.messages:  # every wall-clock text is at 09:00/13:00/19:00/… local, never shifted by an hour
        assert tl.local(m.send_at).minute == 0


@pytest.mark.parametrize("zone,t0", [(c[0], c[1]) for c in DST_CASES])
def test_48_hours_are_elapsed_hours_across_dst(template, zone, t0):
    tl = build(template, t0, zone)
    tl03 = tl.milestone("TL03")
    assert tl03.ends_at - tl03.starts_at == timedelta(hours=48)
    wall = (tl03.ends_at.astimezone(tl.tz).replace(tzinfo=None)
            - tl03.starts_at.astimezone(tl.tz).replace(tzinfo=None))
    assert wall in (timedelta(hours=47), timedelta(hours=49))  # the clock moved in between
    assert tl.milestone("TL01").ends_at - tl.procedure_end == timedelta(hours=2)  # TD default


@pytest.mark.parametrize("zone,day,wall,expected_utc", [
    ("America/New_York", date(2026, 3, 8), time(2, 30), "2026-03-08T07:30"),  # gap → 03:30 EDT
    ("America/New_York", date(2026, 11, 1), time(1, 30), "2026-11-01T05:30"),  # fold → first (EDT)
    ("Europe/London", date(2026, 3, 29), time(1, 30), "2026-03-29T01:30"),  # gap → 02:30 BST
    ("Europe/London", date(2026, 10, 25), time(1, 30), "2026-10-25T00:30"),  # fold → first (BST)
    ("Australia/Sydney", date(2026, 10, 4), time(2, 30), "2026-10-03T16:30"),  # gap → 03:30 AEDT
    ("Australia/Sydney", date(2026, 4, 5), time(2, 30), "2026-04-04T15:30"),  # fold → first (AEDT)
    ("America/New_York", date(2026, 3, 8), time(9, 0), "2026-03-08T13:00"),  # ordinary
])
def test_nonexistent_and_ambiguous_local_times(zone, day, wall, expected_utc):
    assert local_to_utc(day, wall, ZoneInfo(zone)) == utc(expected_utc)


def test_calendar_offsets_landing_in_a_gap_or_fold(template):
    # 02:30 EST on 1 Mar; 7 calendar days later 02:30 does not exist → 03:30 EDT
    tl = build(template, "2026-03-01T02:30")
    assert tl.milestone("TL13").starts_at == utc("2026-03-08T07:30")
    assert tl.local(tl.milestone("TL13").starts_at).strftime("%H:%M %Z") == "03:30 EDT"
    # 01:30 EDT on 25 Oct; 7 days later 01:30 happens twice → the first one (EDT)
    tl = build(template, "2026-10-25T01:30")
    assert tl.milestone("TL13").starts_at == utc("2026-11-01T05:30")


# ---------------------------------------------------------------------------------------------
# A procedure ending at 23:50
# ---------------------------------------------------------------------------------------------

def test_procedure_ending_at_23_50(template):
    tl = build(template, "2026-06-10T23:50")  # TD = 11 Jun 01:50
    sends = {m.key: local(tl, m.send_at) for m in tl.messages}
    # discharge texts due in the night wait for 08:00
    assert sends["S01:TD"] == sends["S04:TD+1h"] == sends["S05:TD+2h"] == "2026-06-11 08:00"
    assert all(m.quiet_moved for m in tl.messages if m.key in ("S01:TD", "S04:TD+1h", "S05:TD+2h"))
    # S02 at TD+1h would repeat S02 of day 1 (09:00 the same morning): only the 09:00 one is kept
    assert "S02:TD+1h" not in sends and sends["S02:day1"] == "2026-06-11 09:00"
    # 19:00 on day 0 was before discharge: not sent; day 1 still is
    assert "S03:day0" not in sends and sends["S03:day1"] == "2026-06-11 09:00"
    # day-0 check-in (T0+6h = 05:50, 20:00 fallback is before TD+2h) collapses into day 1's
    assert "S06:day0" not in sends and "S07:day0" not in sends
    assert tl.checkins[0].slot == "day1" and sends["S06:day1"] == "2026-06-11 09:00"
    assert local(tl, tl.milestone("TL03").ends_at) == "2026-06-12 23:50"
    assert sends["S08:first>=T0+24h"] == "2026-06-12 09:00"
    assert sends["S10:first>=T0+48h"] == sends["S11:first>=T0+48h"] == "2026-06-13 09:00"
    assert local(tl, tl.milestone("TL16").starts_at) == "2026-07-22 23:50"
    assert tl.day_number(tl.milestone("TL16").starts_at) == 42


def test_procedure_ending_at_23_50_before_spring_forward(template):
    tl = build(template, "2026-03-07T23:50")  # 8 Mar loses 02:00-03:00
    assert tl.local(tl.milestone("TL03").ends_at).strftime("%Y-%m-%d %H:%M %Z") == "2026-03-10 00:50 EDT"
    assert local(tl, next(m.send_at for m in tl.messages if m.key == "S06:day1")) == "2026-03-08 09:00"


def test_day0_check_in_evening_fallback(template):
    # T0 16:00, TD 18:00 → T0+6h = 22:00 is in quiet hours; 20:00 is after TD+2h → 20:00
    tl = build(template, "2026-06-10T16:00")
    day0 = tl.checkins[0]
    assert (day0.slot, local(tl, day0.invite.send_at), day0.invite.quiet_moved) == ("day0", "2026-06-10 20:00", False)
    assert day0.reminder is None  # 00:00 → 08:00, the morning of day 1's own check-in
    # T0 17:00, TD 19:00 → TD+2h = 21:00: no evening slot left → day 0 check-in folds into day 1
    tl = build(template, "2026-06-10T17:00")
    assert tl.checkins[0].slot == "day1"
    # An early-morning procedure: T0 01:00, TD 03:00 → 07:00 is quiet → 08:00 the same day
    tl = build(template, "2026-06-10T01:00")
    assert (tl.checkins[0].slot, local(tl, tl.checkins[0].invite.send_at)) == ("day0", "2026-06-10 08:00")


def test_discharge_given_and_late_discharge(template):
    tl = build(template, "2026-06-10T10:00", discharge_local="2026-06-11T15:00")  # stayed overnight
    sends = {m.key: local(tl, m.send_at) for m in tl.messages}
    assert sends["S01:TD"] == "2026-06-11 15:00"
    assert "S02:day1" not in sends and "S06:day0" in sends  # nothing before discharge
    assert local(tl, next(c.invite.send_at for c in tl.checkins if c.slot == "day0")) == "2026-06-11 17:00"
    assert not any(m.send_at < tl.discharge for m in tl.messages)


# ---------------------------------------------------------------------------------------------
# Daily 09:00 fires once per local day; quiet hours on DST days
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("zone", US_ZONES)
@pytest.mark.parametrize("t0", ["2026-03-05T10:00", "2026-10-29T10:00"])
def test_daily_checkin_fires_exactly_once_per_local_day_across_us_dst(template, zone, t0):
    tl = build(template, t0, zone)
    invites = sorted(m.send_at for m in tl.messages if m.kind == "checkin_invite")
    tz = ZoneInfo(zone)
    # step a fake clock minute by minute across days 1-7 (which include 8 Mar / 1 Nov)
    start = local_to_utc(tl.procedure_date + timedelta(days=1), time(0, 0), tz)
    end = local_to_utc(tl.procedure_date + timedelta(days=8), time(0, 0), tz)
    fired: dict[date, int] = {}
    prev, now, i = start, start + timedelta(minutes=1), 0
    while invites[i] <= start:
        i += 1
    while now <= end:
        while i < len(invites) and prev < invites[i] <= now:
            fired[now.astimezone(tz).date()] = fired.get(now.astimezone(tz).date(), 0) + 1
            assert now.astimezone(tz).strftime("%H:%M") == "09:00"
            i += 1
        prev, now = now, now + timedelta(minutes=1)
    assert fired == {tl.procedure_date + timedelta(days=d): 1 for d in range(1, 8)}


@pytest.mark.parametrize("zone", US_ZONES)
@pytest.mark.parametrize("day", [date(2026, 3, 8), date(2026, 11, 1)])
def test_quiet_hours_every_15_minutes_of_dst_days(zone, day):
    tz = ZoneInfo(zone)
    instant = local_to_utc(day, time(0, 0), tz)
    end = local_to_utc(day + timedelta(days=1), time(0, 0), tz)
    slots = 0
    while instant < end:
        sent = next_allowed_send(instant, tz)
        wall = sent.astimezone(tz)
        assert time(8, 0) <= wall.time() < time(21, 0), (zone, instant)
        assert sent >= instant and sent - instant < timedelta(hours=12)
        due_wall = instant.astimezone(tz).time()
        if time(8, 0) <= due_wall < time(21, 0):
            assert sent == instant
        else:
            assert wall.time() == time(8, 0)
            expected_date = instant.astimezone(tz).date() + timedelta(days=1 if due_wall >= time(21, 0) else 0)
            assert wall.date() == expected_date
        assert next_allowed_send(sent, tz) == sent  # idempotent at send time
        slots += 1
        instant += timedelta(minutes=15)
    no_dst = zone in ("America/Phoenix", "Pacific/Honolulu")
    assert slots == 96 if no_dst else (92 if day.month == 3 else 100)  # 23 h / 25 h local days


@pytest.mark.parametrize("zone", US_ZONES)
def test_no_planned_non_urgent_text_in_quiet_hours_for_procedures_on_dst_days(template, zone):
    tz = ZoneInfo(zone)
    for day in (date(2026, 3, 7), date(2026, 3, 8), date(2026, 10, 31), date(2026, 11, 1)):
        for hour in range(0, 24, 3):
            tl = build_timeline(template, procedure_end=local_to_utc(day, time(hour, 50), tz), discharge=None,
                                tz=tz, overrides=ALL_FLAGS)
            for m in tl.messages:
                assert not in_quiet_hours(m.send_at.astimezone(tz).time()), (day, hour, m.key)
                assert m.send_at >= m.due_at and m.send_at >= tl.discharge


def test_next_allowed_send_accepts_config_strings_and_rejects_naive():
    due = datetime(2026, 6, 10, 22, 15, tzinfo=NY)
    assert next_allowed_send(due, NY, ("21:00", "08:00")) == datetime(2026, 6, 11, 8, 0, tzinfo=NY)
    assert next_allowed_send(due, NY, ("23:00", "07:00")) == due
    with pytest.raises(ValueError, match="aware"):
        next_allowed_send(datetime(2026, 6, 10, 22, 15), NY)


# ---------------------------------------------------------------------------------------------
# Per-patient overrides
# ---------------------------------------------------------------------------------------------

def test_override_no_driving_for_two_weeks_needs_the_s01_wording(template):
    with pytest.raises(OverrideError, match=r"milestones\.TL03: message S01 repeats this timing"):
        build(template, "2026-06-10T10:00", overrides=Overrides.from_dict({"milestones": {"TL03": {"end": "T0+14d"}}}))
    o = Overrides.from_dict({"milestones": {"TL03": {"end": "T0+14d"}}, "texts": {
        "S01": "Hi {first}, welcome home. Please have an adult stay with you tonight. Do not drive for 2 weeks."}})
    tl = build(template, "2026-06-10T10:00", overrides=o)
    assert local(tl, tl.milestone("TL03").ends_at) == "2026-06-24 10:00"
    s01 = next(m for m in tl.messages if m.id == "S01")
    assert s01.text_template.endswith("for 2 weeks.")
    o = Overrides.from_dict({"milestones": {"TL03": {"end": "T0+14d"}}, "messages": {"S01": False}})
    assert "S01" not in {m.id for m in build(template, "2026-06-10T10:00", overrides=o).messages}


def test_override_follow_up_at_day_14_moves_its_texts(template):
    tl = build(template, "2026-06-10T10:00", overrides=Overrides.from_dict({"milestones": {"TL16": "date T0+14d"}}))
    sends = {m.key: local(tl, m.send_at) for m in tl.messages}
    assert local(tl, tl.milestone("TL16").starts_at) == "2026-06-24 10:00"
    assert sends["S16:TL16-7d"] == sends["S18:TL16-7d"] == "2026-06-17 09:00"
    assert sends["S17:TL16-1d"] == "2026-06-23 09:00"
    assert local(tl, tl.milestone("TL08").ends_at) == "2026-06-24 10:00"  # baths: until the visit


def test_override_switches(template):
    o = Overrides.from_dict({"messages": {"S03": False, "S07": False}, "checkins": {"optional": True, "day0": False}})
    tl = build(template, "2026-06-10T10:00", overrides=o)
    ids = {m.id for m in tl.messages}
    assert "S03" not in ids and "S07" not in ids
    slots = [c.slot for c in tl.checkins]
    assert slots[0] == "day1" and slots[-2:] == ["day60", "day90"]
    assert local(tl, tl.checkins[-1].invite.send_at) == "2026-09-08 09:00"


@pytest.mark.parametrize("data,message", [
    ({"milestones": {"TL99": {"end": "T0+1h"}}}, "milestones.TL99: unknown milestone"),
    ({"milestones": {"TL16": {"start": "date T0+14d"}}}, "milestones.TL16: is a single moment"),
    ({"milestones": {"TL03": "T0+14d"}}, "milestones.TL03: has a start and an end"),
    ({"milestones": {"TL03": {"end": "TL99.end"}}}, "milestones.TL03.end: unknown milestone id 'TL99'"),
    ({"milestones": {"TL16": "TL08.end"}}, "in a circle"),
    ({"messages": {"S19": False}}, "messages.S19: is an urgent safety reply"),
    ({"messages": {"S15": True}}, "messages.S15: is only for patients with 'brace'"),
    ({"messages": {"S06": False}}, "messages.S06: is a check-in invitation"),
    ({"messages": {"S77": False}}, "messages.S77: unknown message"),
    ({"texts": {"S06": "Hi {first}, please check in today."}}, r"texts.S06: must keep \{link\}"),
    ({"checkins": {"monthly": True}}, "checkins.monthly: unknown check-in group"),
])
def test_overrides_that_do_not_fit_the_template(template, data, message):
    with pytest.raises(OverrideError, match=message):
        build(template, "2026-06-10T10:00", overrides=Overrides.from_dict(data))


def test_override_that_makes_a_milestone_end_before_it_starts(template):
    with pytest.raises(TimelineError, match="milestone TL17: ends .* before it starts"):
        build(template, "2026-06-10T10:00", overrides=Overrides.from_dict({"milestones": {"TL17": {"end": "T0+1h"}}}))


def test_bad_inputs(template):
    tz = NY
    with pytest.raises(TimelineError, match="procedure_end must be timezone-aware"):
        build_timeline(template, procedure_end=datetime(2026, 6, 10, 10), discharge=None, tz=tz, overrides=Overrides())
    with pytest.raises(TimelineError, match="discharge .* is before the end of the procedure"):
        build(template, "2026-06-10T10:00", discharge_local="2026-06-10T09:00")
    with pytest.raises(TimelineError, match="tz must be a zoneinfo.ZoneInfo"):
        build_timeline(template, procedure_end=datetime(2026, 6, 10, 10, tzinfo=tz), discharge=None,
                       tz="America/New_York", overrides=Overrides())


# ---------------------------------------------------------------------------------------------
# Correcting the procedure time after enrolment
# ---------------------------------------------------------------------------------------------

def test_replan_after_procedure_end_is_corrected(template):
    old = build(template, "2026-06-10T10:00")  # enrolled at TD = 12:00
    now = datetime(2026, 6, 10, 12, 30, tzinfo=NY)  # the nurse corrects T0 to 13:00
    stored = [(m.key, m.send_at, "sent" if m.send_at <= now else "planned") for m in old.messages]
    assert ("S01:TD", datetime(2026, 6, 10, 12, 0, tzinfo=NY), "sent") in [
        (k, s.astimezone(NY), st) for k, s, st in stored]
    new = build(template, "2026-06-10T13:00")
    to_cancel, to_add = replan(stored, new, now)
    assert set(to_cancel) == {"S02:TD+1h", "S04:TD+1h", "S05:TD+2h", "S06:day0", "S07:day0"}
    assert {m.key: local(new, m.send_at) for m in to_add} == {
        "S02:TD+1h": "2026-06-10 16:00", "S04:TD+1h": "2026-06-10 16:00", "S05:TD+2h": "2026-06-10 17:00",
        "S06:day0": "2026-06-10 19:00"}
    # S01 was sent: kept, never re-sent, although the new plan has it at 15:00
    assert "S01:TD" not in to_cancel and "S01:TD" not in {m.key for m in to_add}
    # wall-clock texts on the same dates did not move, so their rows are left alone
    assert not {"S06:day1", "S03:day0", "S10:first>=T0+48h", "S16:TL16-7d"} & set(to_cancel)


def test_replan_never_touches_claimed_or_sent_rows_and_drops_stale_times(template):
    old = build(template, "2026-06-10T10:00")
    new = build(template, "2026-06-10T06:00")  # corrected 4 h EARLIER, noticed at 13:30
    now = datetime(2026, 6, 10, 13, 30, tzinfo=NY)

    class Status(str):  # an enum-like status object with .value (as OutboxStatus has)
        @property
        def value(self):
            return str(self)

    stored = [(m.key, m.send_at, Status("claimed") if m.key == "S02:TD+1h" else "planned") for m in old.messages]
    to_cancel, to_add = replan(stored, new, now)
    assert "S02:TD+1h" not in to_cancel and "S02:TD+1h" not in {m.key for m in to_add}
    # S01 moves from 12:00 to 08:00 (5.5 h ago, beyond LATE_GRACE): cancelled, not re-added
    assert "S01:TD" in to_cancel and "S01:TD" not in {m.key for m in to_add}
    # S05 moves from 14:00 to 10:00 (3.5 h ago) → cancelled; S06 day 0: 16:00 → 12:00 (1.5 h ago, within grace)
    assert "S05:TD+2h" in to_cancel and "S05:TD+2h" not in {m.key for m in to_add}
    assert local(new, next(m.send_at for m in to_add if m.key == "S06:day0")) == "2026-06-10 12:00"
    assert all(m.send_at >= now - LATE_GRACE for m in to_add)


def test_replan_revives_only_opted_in_statuses(template):
    first = build(template, "2026-06-10T10:00")
    second = build(template, "2026-06-10T13:00")  # S07:day0 folds away (23:00 → next morning)
    now = datetime(2026, 6, 10, 12, 30, tzinfo=NY)
    stored = [(m.key, m.send_at, "planned") for m in first.messages]
    to_cancel, _ = replan(stored, second, now)
    assert "S07:day0" in to_cancel
    stored = [(k, s, "cancelled" if k == "S07:day0" else st) for k, s, st in stored]
    # by default a cancelled row stays cancelled ("cancelled" also means "check-in already done")
    assert "S07:day0" not in {m.key for m in replan(stored, first, now)[1]}
    stored = [(k, s, "replanned" if k == "S07:day0" else st) for k, s, st in stored]
    to_cancel, to_add = replan(stored, first, now, revivable_statuses=frozenset({"replanned"}))  # back to 10:00
    assert local(first, next(m.send_at for m in to_add if m.key == "S07:day0")) == "2026-06-10 20:00"
    assert "S07:day0" not in to_cancel


def test_now_leaves_out_stale_texts_on_late_enrolment(template):
    now = datetime(2026, 6, 11, 10, 0, tzinfo=NY)  # enrolled the morning after
    tl = build(template, "2026-06-10T10:00", now=now)
    keys = {m.key for m in tl.messages}
    assert "S01:TD" not in keys and "S06:day0" not in keys
    assert "S02:day1" in keys  # 09:00 today: 1 h late, within LATE_GRACE
    assert all(m.send_at >= now - LATE_GRACE for m in tl.messages)
    assert tl.checkins[0].slot == "day1"


# ---------------------------------------------------------------------------------------------
# Today page helpers
# ---------------------------------------------------------------------------------------------

def test_today_helpers(template):
    tl = build(template, "2026-03-07T10:00")  # Sat, EST; DST from 8 Mar
    now = datetime(2026, 3, 8, 7, 0, tzinfo=NY)  # EDT already
    active = active_restrictions(tl, now)
    assert [m.id for m in active] == ["TL02", "TL03", "TL08", "TL14"]  # soonest ending first (v1)
    v2_active = active_restrictions(build(load_template(V2_PATH), "2026-03-07T10:00"), now)
    assert [m.id for m in v2_active] == ["TL02", "TL03", "TL22", "TL08", "TL14"]  # v2: TL22, no shower for 48 h
    assert [m.id for m in next_milestones(tl, now, 3)] == ["TL07", "TL09", "TL17"]
    p = progress(tl, now)
    assert (p.day, p.total_days, p.finished) == (1, 42, False)
    assert p.fraction == pytest.approx(20 / (42 * 24 - 1))  # 20 real hours of 1007 (one hour lost)
    assert progress(tl, datetime(2026, 5, 1, tzinfo=NY)).fraction == 1.0
    assert progress(tl, datetime(2026, 3, 1, tzinfo=NY)).fraction == 0.0
    assert active_restrictions(tl, tl.milestone("TL03").ends_at)[0].id != "TL03"  # end is exclusive



# ---------------------------------------------------------------------------------------------
# Template v2 (issue 10 item 3): safety texts are never dropped or sent too late, and routine
# texts are at most 3 a day, at least 2 h apart. Expected times worked out by hand.
# ---------------------------------------------------------------------------------------------

V2_PATH = TEMPLATE_PATH.with_name("kyphoplasty_v2.toml")
ZONES = ["America/New_York", "Australia/Sydney"]


@pytest.fixture(scope="module")
def v2():
    return load_template(V2_PATH)


def at(zone: str, text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone))


def sends(tl, day: int | None = None) -> dict[str, str]:
    return {m.key: local(tl, m.send_at) for m in tl.messages if day is None or tl.day_number(m.send_at) == day}


@pytest.mark.parametrize("zone", ZONES)
def test_ended_0900_enrolled_1350_gets_the_safety_texts_at_once(v2, zone):
    """Repro: S01 was never planned (LATE_GRACE) while later texts went."""
    tl = build(v2, "2026-06-10T09:00", zone, now=at(zone, "2026-06-10T13:50"))
    got = sends(tl)
    assert got["S01:TD"] == got["S02:TD+1h"] == "2026-06-10 13:50"  # due 11:00 and 12:00: at once
    assert {m.key for m in tl.messages if m.safety} == {"S01:TD", "S02:TD+1h"}
    assert "48 hours" in next(m for m in tl.messages if m.id == "S01").text_template
    # routine texts still follow LATE_GRACE: due 12:00 and 13:00 (under 2 h ago) they go now or later
    assert got["S05:TD+2h"] == "2026-06-10 13:50" and got["S04:TD+1h"] == "2026-06-10 15:50"
    assert all(m.send_at >= at(zone, "2026-06-10T13:50") for m in tl.messages)


@pytest.mark.parametrize("zone", ZONES)
def test_evening_discharge_sends_tonight_texts_tonight(v2, zone):
    """Repro: ending 19:30 (discharge 21:30), S01 went at 08:00 the next day and the day-0 S02 at 09:00."""
    tl = build(v2, "2026-06-10T19:30", zone, now=at(zone, "2026-06-10T21:30"))
    got = sends(tl)
    assert got["S01:TD"] == "2026-06-10 21:30" and got["S02:TD+1h"] == "2026-06-10 22:30"
    assert sends(tl, 0) == {"S01:TD": "2026-06-10 21:30", "S02:TD+1h": "2026-06-10 22:30"}
    assert got["S02:day1"] == "2026-06-11 09:00"  # the routine repeat next morning still goes
    assert not any(m.quiet_moved for m in tl.messages if m.safety)


@pytest.mark.parametrize("zone", ZONES)
def test_ended_2230_safety_texts_wait_for_0800(v2, zone):
    tl = build(v2, "2026-06-10T22:30", zone, now=at(zone, "2026-06-11T00:30"))  # discharge 00:30
    got = sends(tl)
    assert got["S01:TD"] == got["S02:TD+1h"] == "2026-06-11 08:00"  # after 23:00: the next 08:00
    assert all(m.quiet_moved for m in tl.messages if m.safety)
    assert "S02:day1" not in got  # S02 went at 08:00: its routine repeat at 09:00 that day is dropped
    assert got["S02:day2"] == "2026-06-12 09:00"


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize("discharge,s01,s02", [
    ("2026-06-10T21:59", "2026-06-10 21:59", "2026-06-10 22:59"),
    ("2026-06-10T22:00", "2026-06-10 22:00", "2026-06-11 08:00"),  # S02 due 23:00 exactly: not before 23:00
    ("2026-06-10T22:59", "2026-06-10 22:59", "2026-06-11 08:00"),
    ("2026-06-10T23:00", "2026-06-11 08:00", "2026-06-11 08:00"),
    ("2026-06-11T07:30", "2026-06-11 08:00", "2026-06-11 08:30"),
])
def test_the_2300_rule_for_safety_texts(v2, zone, discharge, s01, s02):
    tl = build(v2, "2026-06-10T18:00", zone, discharge_local=discharge)
    got = sends(tl)
    assert (got["S01:TD"], got["S02:TD+1h"]) == (s01, s02)


@pytest.mark.parametrize("zone", ZONES)
def test_a_late_enrolment_sends_safety_texts_at_once_up_to_24_h_after_discharge(v2, zone):
    build_at = lambda now: build(v2, "2026-06-10T09:00", zone, now=at(zone, now))  # noqa: E731 (discharge 11:00)
    assert sends(build_at("2026-06-11T11:00"))["S01:TD"] == "2026-06-11 11:00"  # 24 h after discharge
    assert "S01:TD" not in sends(build_at("2026-06-11T11:01"))  # "tonight" is over: the nurse page says so
    night = sends(build_at("2026-06-10T23:30"))  # enrolled late at night: at 08:00, not at 23:30
    assert night["S01:TD"] == night["S02:TD+1h"] == "2026-06-11 08:00"
    evening = sends(build_at("2026-06-10T22:15"))  # before 23:00 they go at once, routine texts wait
    assert evening["S01:TD"] == "2026-06-10 22:15"
    assert "S03:day0" not in evening  # 19:00, more than 2 h ago


DST_EDGE = [  # (zone, procedure end, enrolled at, expected local S01, S02, the UTC offsets of both)
    # US spring forward 8 Mar 02:00 → 03:00: discharge 00:30 EST, S02 TD+1h is 02:30 EST = 03:30 EDT
    ("America/New_York", "2026-03-07T22:30", "2026-03-08T00:30", "2026-03-08 08:00", "2026-03-08 08:00", "-04:00"),
    # US fall back 1 Nov 02:00 → 01:00: discharge 00:30 EDT, S02 at 01:30 EDT (the first one)
    ("America/New_York", "2026-10-31T22:30", "2026-11-01T00:30", "2026-11-01 08:00", "2026-11-01 08:00", "-05:00"),
    ("America/New_York", "2026-03-07T19:30", "2026-03-07T21:30", "2026-03-07 21:30", "2026-03-07 22:30", "-05:00"),
    # Sydney fall back 5 Apr 03:00 → 02:00 and spring forward 4 Oct 02:00 → 03:00
    ("Australia/Sydney", "2026-04-04T22:30", "2026-04-05T00:30", "2026-04-05 08:00", "2026-04-05 08:00", "+10:00"),
    ("Australia/Sydney", "2026-10-03T22:30", "2026-10-04T00:30", "2026-10-04 08:00", "2026-10-04 08:00", "+11:00"),
    ("Australia/Sydney", "2026-10-03T19:30", "2026-10-03T21:30", "2026-10-03 21:30", "2026-10-03 22:30", "+10:00"),
    # enrolled at 13:50 on the spring-forward day (procedure 09:00 EDT)
    ("America/New_York", "2026-03-08T09:00", "2026-03-08T13:50", "2026-03-08 13:50", "2026-03-08 13:50", "-04:00"),
]


@pytest.mark.parametrize("zone,t0,enrolled,s01,s02,offset", DST_EDGE, ids=[f"{c[0]}-{c[1]}" for c in DST_EDGE])
def test_safety_texts_on_a_dst_change_day(v2, zone, t0, enrolled, s01, s02, offset):
    tl = build(v2, t0, zone, now=at(zone, enrolled))
    by_key = {m.key: m for m in tl.messages}
    assert (local(tl, by_key["S01:TD"].send_at), local(tl, by_key["S02:TD+1h"].send_at)) == (s01, s02)
    assert {tl.local(by_key[k].send_at).isoformat()[-6:] for k in ("S01:TD", "S02:TD+1h")} == {offset}
    for m in tl.messages:  # nothing routine in quiet hours, nothing at all from 23:00
        t = tl.local(m.send_at).time()
        assert not in_quiet_hours(t, ("23:00", "08:00")) and (m.safety or not in_quiet_hours(t))


def _routine_by_day(tl) -> dict[date, list[datetime]]:
    days: dict[date, list[datetime]] = {}
    for m in tl.messages:
        if m.kind in ("reminder", "checkin_reminder") and not m.safety:
            days.setdefault(tl.local(m.send_at).date(), []).append(m.send_at)
    return days


@pytest.mark.parametrize("zone", ZONES + ["America/Los_Angeles", "Europe/London"])
@pytest.mark.parametrize("day", ["2026-03-07", "2026-06-10", "2026-10-03", "2026-10-31"])
def test_routine_texts_at_most_3_a_day_2_h_apart_and_safety_texts_always_planned(v2, zone, day):
    """Every half hour of four days (two of them before DST changes), with every opt-in on."""
    tz = ZoneInfo(zone)
    start = datetime.fromisoformat(day).replace(tzinfo=tz)
    for half_hours in range(48):
        t0 = start + timedelta(minutes=30 * half_hours)
        tl = build_timeline(v2, procedure_end=t0, discharge=None, tz=tz, overrides=ALL_FLAGS,
                            now=t0 + timedelta(hours=2))
        for moments in _routine_by_day(tl).values():
            moments.sort()
            assert len(moments) <= 3, (t0, moments)
            assert all(b - a >= timedelta(hours=2) for a, b in zip(moments, moments[1:])), (t0, moments)
        assert {m.key for m in tl.messages if m.safety} == {"S01:TD", "S02:TD+1h"}, t0
        for m in tl.messages:
            t = tl.local(m.send_at).time()
            assert not in_quiet_hours(t, v2.safety_quiet_hours if m.safety else v2.quiet_hours), (t0, m.key)
        assert all(c.reminder is None or c.reminder.send_at < c.missed_at for c in tl.checkins)
        assert not {m.key for m in tl.held} & {m.key for m in tl.messages}


def test_the_template_order_decides_which_texts_move_and_which_are_held(v2):
    # Evening discharge: day 1 has S04, S05 (08:00 after the night) and S02, S03, S09 (09:00), S07 (13:00)
    tl = build(v2, "2026-06-10T19:30", now=at("America/New_York", "2026-06-10T21:30"))
    assert sends(tl, 1) == {"S02:day1": "2026-06-11 09:00", "S06:day1": "2026-06-11 09:00",
                            "S05:TD+2h": "2026-06-11 11:00", "S07:day1": "2026-06-11 13:00"}
    assert [m.key for m in tl.held if tl.day_number(m.send_at) == 1] == ["S04:TD+1h", "S03:day1", "S09:day1"]
    assert next(m for m in tl.messages if m.key == "S05:TD+2h").spaced
    # ranking S09 first moves it into the first slot and holds S05 instead
    from dataclasses import replace as _replace
    order = ("S09",) + tuple(x for x in v2.daily_limit.order if x != "S09")
    tl = build(_replace(v2, daily_limit=_replace(v2.daily_limit, order=order)), "2026-06-10T19:30")
    assert sends(tl, 1)["S09:day1"] == "2026-06-11 09:00" and "S05:TD+2h" in {m.key for m in tl.held}


def test_template_v1_keeps_its_plan(template, v2):
    """Patients enrolled on v1 keep what v1 planned: no safety texts, no daily limit."""
    tl = build(template, "2026-06-10T19:30")
    assert sends(tl)["S01:TD"] == "2026-06-11 08:00" and not tl.held and not any(m.safety for m in tl.messages)
    assert template.daily_limit is None and template.safety_quiet_hours == template.quiet_hours


def test_replan_keeps_a_due_safety_text_and_drops_it_after_24_h(v2):
    old = build(v2, "2026-06-10T09:00")  # discharge 11:00
    stored = [(m.key, m.send_at, "planned") for m in old.messages]
    new = build(v2, "2026-06-10T06:00")  # corrected at 10:30: S01 due 08:00, S02 09:00 (both past)
    to_cancel, to_add = replan(stored, new, at("America/New_York", "2026-06-10T10:30"))
    added = {m.key: local(new, m.send_at) for m in to_add}
    assert added["S01:TD"] == "2026-06-10 08:00" and added["S02:TD+1h"] == "2026-06-10 09:00"  # due: at once
    assert added["S05:TD+2h"] == "2026-06-10 10:00"  # routine, within LATE_GRACE
    to_cancel, to_add = replan(stored, new, at("America/New_York", "2026-06-10T13:30"))
    assert "S01:TD" not in to_cancel  # its row (11:00) is due already and stays: it goes now
    assert "S05:TD+2h" in to_cancel and "S05:TD+2h" not in {m.key for m in to_add}  # routine, past LATE_GRACE
    later = replan(stored, new, at("America/New_York", "2026-06-11T08:01"))  # 24 h 1 min after discharge
    assert "S01:TD" in later[0] and "S01:TD" not in {m.key for m in later[1]}
    # a pending row that is due now and stays due is left alone (no cancel + re-add churn)
    now = at("America/New_York", "2026-06-10T11:05")
    same = build(v2, "2026-06-10T09:00", discharge_local="2026-06-10T11:02")
    to_cancel, to_add = replan(stored, same, now)
    assert "S01:TD" not in to_cancel and "S01:TD" not in {m.key for m in to_add}


# ---------------------------------------------------------------------------------------------
# Issue 10 item 6: a per-patient no-driving time is worded by the plan
# ---------------------------------------------------------------------------------------------

NO_DRIVING_21 = Overrides.from_dict({"milestones": {"TL03": {"end": "T0+504h"}}})  # what the form stores


def test_no_driving_for_21_days_rewords_s01_and_the_milestone(v2):
    tl = build(v2, "2026-06-10T10:00", overrides=NO_DRIVING_21)
    tl03 = tl.milestone("TL03")
    assert local(tl, tl03.ends_at) == "2026-07-01 10:00"  # day 21
    assert "for 3 weeks" in tl03.detail and "48 hours" not in tl03.detail
    s01 = next(m for m in tl.messages if m.id == "S01")
    assert s01.text_template == ("Hi {first}, welcome home. Please have an adult stay with you tonight. "
                                 "Do not drive or use buses or trains for 3 weeks.")
    assert s01.safety


@pytest.mark.parametrize("hours,words", [(48, "48 hours"), (36, "36 hours"), (72, "3 days"), (168, "1 week"),
                                         (240, "10 days"), (336, "2 weeks"), (2160, "90 days"), (50, "50 hours")])
def test_lengths_in_words(hours, words):
    from recovery.domain.plan.overrides import duration_words
    assert duration_words(timedelta(hours=hours)) == words


def test_a_clinic_s01_wording_survives_a_per_patient_length(tmp_path):
    from recovery.files.plans import load_clinic_template
    (tmp_path / "kyphoplasty_v2.toml").write_text(V2_PATH.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "clinics").mkdir()
    (tmp_path / "clinics" / "north.toml").write_text(
        'clinic = "north"\nversion = 1\ntitle = "North"\nbased_on = "kyphoplasty"\nbased_on_version = 2\n\n'
        '[contact]\nemerg = "999"\nphone = "0161 496 0000"\n\n'
        '[milestones.TL03]\nend = "T0+14d"\nlasts = "two weeks"\n'
        'detail = "No driving, buses or trains for two weeks. Ask us before you drive again."\n'
        'detail_es = "No maneje ni use autobuses o trenes durante dos semanas. Pregúntenos antes de volver a '
        'manejar."\n\n'
        '[messages.S01]\ntext = "Welcome home {first}. An adult should be with you tonight. No driving, buses or '
        'trains for two weeks."\ntext_es = "Bienvenido a casa {first}. Un adulto debe estar con usted esta noche. '
        'No maneje ni tome autobuses o trenes durante dos semanas."\n', encoding="utf-8")
    clinic = load_clinic_template(tmp_path / "clinics" / "north.toml", tmp_path)
    tl = build(clinic, "2026-06-10T10:00", "Europe/London", overrides=NO_DRIVING_21)
    s01 = next(m for m in tl.messages if m.id == "S01")
    assert s01.text_template == ("Welcome home {first}. An adult should be with you tonight. No driving, buses or "
                                 "trains for 3 weeks.")
    assert tl.milestone("TL03").detail == "No driving, buses or trains for 3 weeks. Ask us before you drive again."
    plain = build(clinic, "2026-06-10T10:00", "Europe/London")
    assert next(m for m in plain.messages if m.id == "S01").text_template.endswith("for two weeks.")


def test_an_explicit_s01_text_still_wins_and_bad_lengths_are_refused(v2):
    o = Overrides.from_dict({"milestones": {"TL03": {"end": "T0+504h"}},
                             "texts": {"S01": "Hi {first}, welcome home. No driving for 21 days."}})
    s01 = next(m for m in build(v2, "2026-06-10T10:00", overrides=o).messages if m.id == "S01")
    assert s01.text_template.endswith("for 21 days.")  # enrolments stored with their own wording keep it
    with pytest.raises(OverrideError, match=r"milestones\.TL03: its texts say how long it lasts"):
        build(v2, "2026-06-10T10:00", overrides=Overrides.from_dict({"milestones": {"TL03": {"end": "date T0+21d"}}}))
    with pytest.raises(OverrideError, match=r"milestones\.TL03: a length of .* cannot be put in words"):
        build(v2, "2026-06-10T10:00", overrides=Overrides.from_dict({"milestones": {"TL03": {"end": "T0+30m"}}}))
    with pytest.raises(OverrideError, match=r"messages\.S01: is a safety text and cannot be switched off"):
        build(v2, "2026-06-10T10:00", overrides=Overrides.from_dict({"messages": {"S01": False}}))
