"""A clinic's plan edit rewords every language (the plan files require it): a new length for a
milestone that says how long it lasts goes into the Spanish detail and texts in Spanish words."""
from datetime import timedelta
from pathlib import Path

from recovery.domain.plan.clinic_changes import edit_changes
from recovery.domain.plan.overrides import duration_words_es
from recovery.files import templates as templates_repo

SCHEDULES = Path(__file__).resolve().parents[2] / "schedules"


def test_spanish_duration_words():
    assert duration_words_es(timedelta(hours=1)) == "1 hora"
    assert duration_words_es(timedelta(hours=48)) == "48 horas"
    assert duration_words_es(timedelta(hours=72)) == "72 horas"  # keeps a text in GSM-7
    assert duration_words_es(timedelta(days=10)) == "10 días"
    assert duration_words_es(timedelta(weeks=1)) == "1 semana"
    assert duration_words_es(timedelta(weeks=6)) == "6 semanas"


def test_a_longer_no_driving_rule_is_reworded_in_spanish_too():
    plan = templates_repo.clinic_template(SCHEDULES, None, "kyphoplasty")
    changes = edit_changes(plan, plan, {"TL03": {"end": "T0+72h"}}, {}, {})
    tl03 = changes[("milestones", "TL03")]
    assert tl03["end"] == "T0+72h" and "3 days" in tl03["detail"] and "72 horas" in tl03["detail_es"]
    s01 = changes[("messages", "S01")]
    assert "3 days" in s01["text"] and "72 horas" in s01["text_es"] and "48" not in s01["text_es"]
    # a Spanish text typed on the form is kept as typed
    typed = edit_changes(plan, plan, {"TL03": {"end": "T0+72h"}}, {},
                         {"es": {"S01": "Hola {first}. No maneje durante tres días."}})
    assert typed[("messages", "S01")]["text_es"] == "Hola {first}. No maneje durante tres días."
