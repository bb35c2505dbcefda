"""Issue 17: the patient pages' database work per request, counted (counts are deterministic,
timings are not). The check-in screen GET was 9 statements and Today 8; the session, its patient
and clinic are one statement now, the check-in with its enrolment and "is it the first" another.
A patient's GET writes nothing, and an unchanged patient cookie is not signed and sent again."""
from __future__ import annotations

from datetime import timedelta


from tests.support.statements import count_statements
from tests.web.test_checkin_web import NOW, checkin_client, location, start_slot, today_client, world  # noqa: F401

CHECKIN_GET_MAX = 3  # BEGIN (SQLite), the session with its patient and clinic, the check-in with its enrolment
TODAY_GET_MAX = 4  # BEGIN, the session..., the enrolments, the open slot's check-ins and unsent reports





def _reads_only(statements: list[str]) -> bool:
    return all(s.lstrip().split(None, 1)[0].upper() in ("SELECT", "BEGIN") for s in statements)


def test_checkin_screen_get_statements(client, session, world):
    clinic, nurse, patient = world
    checkin_client(client, session, patient)
    checkin_id, group_id = start_slot(client)
    session.remove()
    url = f"/me/checkin/{checkin_id}/step/{group_id}"
    assert client.get(url).status_code == 200
    with count_statements() as seen:
        r = client.get(url)
    assert r.status_code == 200 and b"<form" in r.data
    assert len(seen) <= CHECKIN_GET_MAX, seen
    assert _reads_only(seen), seen
    assert "Set-Cookie" not in r.headers  # the same cookie as before: not signed and sent again


def test_today_get_statements(client, session, world):
    clinic, nurse, patient = world
    today_client(client, session, patient)
    session.remove()
    assert client.get("/me").status_code == 200
    with count_statements() as seen:
        r = client.get("/me")
    assert r.status_code == 200
    assert len(seen) <= TODAY_GET_MAX, seen
    assert _reads_only(seen), seen
    assert "Set-Cookie" not in r.headers


def test_unsent_cookie_still_opens_the_pages_and_a_changed_one_is_sent(client, session, world, frozen):
    """Not re-sending the cookie changes nothing for the patient: later pages still open, and a
    session change (the CSRF token first stored, the language switched) is still sent."""
    clinic, nurse, patient = world
    today_client(client, session, patient)
    for _ in range(3):
        assert client.get("/me").status_code == 200
    frozen.move_to(NOW + timedelta(days=2))
    assert client.get("/me").status_code == 200
    r = client.post("/me/checkin/report")
    assert r.status_code == 303 and "/me/checkin/" in location(r)
