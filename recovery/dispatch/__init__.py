"""Sending the outbox: claim due rows under a lease, re-check them, render, send, record the result.
Split by its steps: settings, claims, prepare (re-check and render), sender, results, status
(delivery callbacks); the scheduler's tick (recovery.scheduler.tick) drives it.

The outbox table is the single source of truth (reliability.md §2): the scheduler can be
restarted, run twice, or be down for an hour, and every due row is still sent, once.

* Claim. One short write transaction takes up to `batch` due rows: status planned → claimed,
  claimed_by = this process, lease_until = send slot + lease, attempts + 1. SQLite: BEGIN
  IMMEDIATE (one writer at a time, so nothing else holds the rows). PostgreSQL: the id sub-select
  is `FOR UPDATE SKIP LOCKED` on this one table, and the UPDATE re-checks the state. A claimed row
  whose lease ran out and that has no provider SID is claimable again; the only duplicate window
  is a crash between the provider's 201 and storing the SID, narrowed further because the status
  callback URL carries the row id (`?ob=<id>`), so the first callback ties the SID to the row.
* Re-check just before sending (its own transaction): consent and opt-out of the recipient, the
  number not marked invalid, the enrolment still active and, for routine texts, not paused
  (recovery/domain/episode_rules.py), the text still wanted (check-in already
  done → cancelled; alert already acknowledged → staff page cancelled), not stale (STALE_AFTER),
  quiet hours for non-urgent texts (released and moved to the next 08:00, never sent; for the
  plan's safety texts, `row.safety`, quiet hours start at the template's safety_start, 23:00),
  and the recipient's opt-in confirmation S00 gone first (carriers want it to be the first text a
  number gets: each tick sends those before anything else; see _opt_in_hold for what may wait).
  Then the body is rendered with a fresh link token (only its SHA-256 is stored; the stored body
  shows "[link]" in its place) and its SMS segments and encoding are stored on the row.
* Send with NO transaction open, then record the SID (or the error) in a new short transaction.
* Status only moves forward: planned → claimed → sent → delivered/undelivered/failed; suppressed
  and cancelled are final. A claim is released back to planned only when nothing was sent (quiet
  hours, or a retryable error whose request never reached the provider).

Pacing (SMS_MAX_PER_SECOND per sender, across processes): the re-check transaction just before a
send also reserves the send slot. It holds the pacing lock (SQLite's single writer; a PostgreSQL
advisory lock per sender), takes the slot 1/rate after the latest slot any process has taken
(stored in that row's `send_after`), commits, sleeps until the slot and sends. Slots are spaced
exactly; a send can only be later than its slot by the sleep's overshoot and the HTTP latency
(milliseconds), so in any one-second window there are at most rate + 1 sends. A tick claims at
most rate x tick seconds rows, so no process sits on more than it can send.

Staleness (a text is suppressed, not sent, when this much later than its planned send time, which
is its due time after quiet hours, or when the row was planned if that came later): 12 h for every
patient text. A check-in invitation or reminder 12 h late belongs to a day that
is over; an advice text 12 h late is about the wrong part of the day. An outage of an hour
sends everything; a scheduler down overnight does not fire yesterday's texts at breakfast.
Staff pages never go stale while their alert is still unacknowledged.
"""
