"""The symptom check-in questionnaire (protocol.md §2.1): `model` (kinds, items, groups, errors), `items`
(the items, sections and screens, as data), `form` (which are asked: `groups_for`, `items_on`, defaults),
`answers` (`parse_group`, `coerce_answers`, `dump_answers`). Import each name from its module (package
inits import nothing).

Pure module: standard library only, no clock, no I/O.

Two kinds of input are handled here, and they get different error messages:

* ``parse_group`` reads raw HTML form input for one screen and answers with patient-friendly
  messages ("Please choose a number from 0 to 10.").
* ``coerce_answers`` checks answers that are already typed (case files, stored check-ins) and
  raises ``AnswerError`` naming the item id, for clinicians and developers.

Typed answers use: ``int`` (0-10 scales, ``bowel_days``), ``str`` (single choice), ``frozenset[str]``
(multi-select), ``bool``, ``Decimal`` (``temp_value``) and ``str`` (``free_text``).

Readings of the protocol
------------------------
* Sections: emergency items first (MR2), then pain, pain details, temperature, sepsis questions,
  needle site, how you feel, medicines, bowel, other. Each question has a screen of its own (a
  patient in pain reads one short question at a time); the section's title is shown above it.
  Follow-up items that depend on an earlier answer (``leg_pain``/``rib_pain``, ``sepsis_screen``,
  ``bowel_days``, and ``temp_value``/``temp_unit``, which share one screen, once ``temp_status`` is
  ``measured``) appear once that answer is known, so ``groups_for`` decides them from answers
  already given. Screen ids are item ids (``temp_value`` for the temperature and its unit).
* A whole section can still be posted at once (``parse_group("pain", ...)``): a page rendered
  before the screens were split, still open on a phone, must not lose its answers. There the
  temperature reading is read only when ``temp_status`` is ``measured`` in the same post.
* Splitting screens changes no item id, answer coding or scoring: the triage rules see the same
  answers. ``Item.ask`` is a shorter wording for the screen; ``Item.question`` stays the record's.
* "Every check-in until day 14" and "days 0-14" include day 14; "days 0-7" and "days 0-3" include
  the last day. ``temp_status`` is asked on every check-in up to day 14 and on weekly check-ins
  after that (ad hoc check-ins after day 14 do not ask it).
* ``brace_ok`` is asked on weekly check-ins only when the caller says a brace was prescribed
  (the word "brace" is opt-in, TL15); ``restrictions_ok`` on every weekly check-in.
* A multi-select must have at least one tick; its "nothing" option (``none``, or ``normal`` for
  ``wound``) cannot be combined with another tick. ``neuro``: ``not_sure`` may be ticked with a
  symptom (MR4 still sees the symptom) but not with ``none``.
* Implausible temperatures (outside 34.0-43.0 °C after conversion): the first entry is refused with
  a request to re-check; the caller renders the hidden field ``temp_confirmed`` (value from
  ``pending_temp_confirmation``). A second entry that is still outside the range, whether or not it
  is the same number, is accepted (protocol §3.1: "if it is still outside, raise URGENT") and rule
  U23 then applies in the rules engine.
* Booleans are Yes/No radio buttons, so "not answered" can be told apart from "No".
* ``free_text`` is optional (blank is allowed); every other asked item must be answered.
"""
