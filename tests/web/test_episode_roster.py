"""Issue 13 §2, the roster: status of each episode (active, paused, ended) with a filter, and search
by part of the first and last name together or by the last digits of the mobile."""
from __future__ import annotations

from datetime import date, timedelta

import pytest

from recovery.services import episodes
from recovery.store.enrolments import current_enrolment
from tests.support.factories import enrol, make_clinic, make_staff
from tests.web.test_episode import T0, nurse_client

NOW = T0 + timedelta(hours=2)


@pytest.fixture
def roster(app, session, time_machine):
    time_machine.move_to(NOW, tick=False)
    clinic, other = make_clinic(session, now=T0), make_clinic(session, now=T0)
    nurse = make_staff(session, clinic, now=T0)
    people = {}
    for first, last, mobile in (("Dora", "Day", "+12025550101"), ("Paula", "Pause", "+12025550202"),
                                ("Edgar", "Ended", "+12025550303"), ("Daisy", "Dayton", "+12025550404")):
        p = enrol(session, clinic, procedure_end=T0, now=NOW, first=first, mobile=mobile)
        p.last_name = last
        people[first] = p
    hidden = enrol(session, other, procedure_end=T0, now=NOW, first="Dora", mobile="+12025550109")
    hidden.last_name = "Day"
    episodes.pause_texts(session, enrolment=current_enrolment(people["Paula"]), patient=people["Paula"],
                         until=date(2026, 3, 20), staff=nurse, now=NOW)
    episodes.end_monitoring(session, enrolment=current_enrolment(people["Edgar"]), patient=people["Edgar"],
                            reason="transferred", note=None, staff=nurse, now=NOW)
    session.commit()
    return nurse


def names(page: bytes) -> set[str]:
    import re
    return set(re.findall(r">([A-Z][a-z]+, [A-Z][a-z]+)</a>", page.decode()))


@pytest.mark.parametrize("query,status,expected", [
    ("", "", {"Day, Dora", "Pause, Paula", "Ended, Edgar", "Dayton, Daisy"}),
    ("Dora Day", "", {"Day, Dora"}), ("day dor", "", {"Day, Dora"}), ("day", "", {"Day, Dora", "Dayton, Daisy"}),
    ("0101", "", {"Day, Dora"}), ("555-0303", "", {"Ended, Edgar"}), ("(202) 555 0404", "", {"Dayton, Daisy"}),
    ("", "active", {"Day, Dora", "Dayton, Daisy"}), ("", "paused", {"Pause, Paula"}), ("", "ended", {"Ended, Edgar"}),
    ("day", "active", {"Day, Dora", "Dayton, Daisy"}), ("Edgar", "active", set()),
    ("", "teleported", {"Day, Dora", "Pause, Paula", "Ended, Edgar", "Dayton, Daisy"}),
    ("%", "", set()), ("_", "", set()), ("\\", "", set()), ("0109", "", set()),
])
def test_the_roster_filters_by_status_and_finds_by_name_or_phone_digits(app, session, roster, query, status,
                                                                        expected):
    r = nurse_client(app, roster).get("/nurse/patients", query_string={"q": query, "status": status})
    assert r.status_code == 200
    assert names(r.data) == expected


def test_the_roster_shows_each_status_and_the_htmx_fragment_is_the_rows(app, session, roster):
    c = nurse_client(app, roster)
    page = c.get("/nurse/patients").get_data(as_text=True)
    assert "Paused</span> until Fri 20 Mar 2026" in page and ">Ended</span>" in page and ">Active</span>" in page
    assert 'name="status"' in page
    frag = c.get("/nurse/patients?status=paused", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert frag.lstrip().startswith('<div id="patient-rows"') and "Pause, Paula" in frag
