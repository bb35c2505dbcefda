"""What pausing and ending an enrolment mean for its texts (pure: standard library only, `now` given).

The decisions (issue 13 §2; protocol.md §1.1 "the exceptions ... answer something the patient just did"):

* ENDED (a reason from END_REASONS): nothing is ever sent again for the enrolment, to anyone. Its
  planned texts are cancelled when it ends and the send pipeline cancels any row of it that is
  claimed later (recovery/dispatch.py), so no path can text a patient who died.
* PAUSED until a day (the start of that day in the patient's zone): the plan's routine texts (advice,
  reminders, check-in invitations and reminders, and the plan's scheduled safety texts S01/S02,
  which assume the patient is at home) are held: cancelled when the pause starts and again if one
  comes due during it. What still goes: an event reply (`kind == "event_reply"`), which answers
  something the patient did themselves: S19 "call {emerg} now" after an EMERGENCY answer, S20/S21/
  S22, a link they asked for, the carrier's opt-in/opt-out replies. A paused patient can still open
  their link, check in and text us, and a red flag must get its safety reply. Staff pages about the
  patient's alerts still go. Texts a nurse writes (a one-off text, a resent link) are held too:
  the nurse paused them.
* Resuming (by hand, or when the day comes) re-plans the plan's texts still ahead; the ones that
  came due during the pause are not sent late.
"""
from __future__ import annotations

from datetime import datetime

ACTIVE, PAUSED, ENDED = "active", "paused", "ended"

END_REASONS = {
    "completed": "Recovery monitoring completed",
    "readmitted": "Readmitted to hospital",
    "transferred": "Care transferred elsewhere",
    "deceased": "The patient died",
    "withdrew": "The patient withdrew",
    "other": "Other (see note)",
}
# Kinds that answer something the patient did themselves: they go during a pause.
PAUSE_EXEMPT_KINDS = frozenset({"event_reply"})
MAX_PAUSE_DAYS = 90


def episode_status(status: str, paused_until: datetime | None, now: datetime) -> str:
    """active | paused | ended, from the enrolment's stored status and pause."""
    if status != ACTIVE:
        return ENDED
    if paused_until is not None and paused_until > now:
        return PAUSED
    return ACTIVE


def held_by_pause(paused_until: datetime | None, now: datetime, *, recipient: str, kind: str) -> bool:
    """True when a text of a paused enrolment must not go now (see the module docstring)."""
    if paused_until is None or paused_until <= now:
        return False
    return recipient != "staff" and kind not in PAUSE_EXEMPT_KINDS


def may_text(status: str, paused_until: datetime | None, now: datetime) -> bool:
    """Whether a nurse may send anything (a one-off text, a new link) to the enrolment now."""
    return episode_status(status, paused_until, now) == ACTIVE
