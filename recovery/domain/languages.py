"""The languages patients can read their pages and texts in (issue 14): one list, named two ways.

Adding a language (README "Adding a language") starts here; the catalogs under translations/ and
the plan files' `text_<code>` fields follow."""
from __future__ import annotations

DEFAULT = "en"
# code -> the language's own name (the patient's switch: "English · Español")
OWN_NAMES = {"en": "English", "es": "Español"}
# code -> its name in English (the staff pages and the admin's messages: "written in Spanish")
ENGLISH_NAMES = {"en": "English", "es": "Spanish"}
