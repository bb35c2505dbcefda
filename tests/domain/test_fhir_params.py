"""The FHIR date search parameter and HL7 v2 times (pure)."""
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from recovery.domain.fhir.bundles import SearchError, date_param, patient_param
from recovery.domain.hl7v2 import dtm

UTC = timezone.utc


def test_date_prefixes_precisions_and_hl7_times():
    at = datetime(2026, 3, 9, 15, 0, tzinfo=UTC)
    day_start, next_day = datetime(2026, 3, 9, tzinfo=UTC), datetime(2026, 3, 10, tzinfo=UTC)
    assert date_param("2026-03-09").matches(at) and not date_param("2026-03-09").matches(next_day)
    assert date_param("ge2026-03-09").matches(day_start) and not date_param("gt2026-03-09").matches(at)
    assert date_param("gt2026-03-09").matches(next_day) and date_param("lt2026-03-10").matches(at)
    assert date_param("le2026-03").matches(datetime(2026, 3, 31, 23, 59, tzinfo=UTC))
    assert not date_param("le2026-03").matches(datetime(2026, 4, 1, tzinfo=UTC))
    assert date_param("2026").matches(at) and date_param("ne2025").matches(at)
    assert date_param("ge2026-03-09T10:00:00-05:00").matches(at) and not date_param("gt2026-03-09T10:00:00-05:00").matches(at)
    assert date_param("lt2026-12").matches(at) and date_param("eb2026-12").matches(at)
    for bad in ("yesterday", "2026-13-01", "2026-02-30", "xx2026", "2026-03-09T25:00", ""):
        with pytest.raises(SearchError):
            date_param(bad)
    assert patient_param("Patient/12", "https://x/fhir") == 12 == patient_param("https://x/fhir/Patient/12", "https://x/fhir")
    with pytest.raises(SearchError):
        patient_param("Group/12", "https://x/fhir")
    ny = ZoneInfo("America/New_York")
    assert dtm("202603090930", ny) == datetime(2026, 3, 9, 13, 30, tzinfo=UTC)  # EDT since 8 March
    assert dtm("20260309093015-0500", ny) == datetime(2026, 3, 9, 14, 30, 15, tzinfo=UTC)
    assert dtm("20260309", ny) is None and dtm("202602300930", ny) is None and dtm("2026030909301", ny) is None
