"""Recovery-plan templates: data classes, the offset grammar, and every check on a template's fields.

Pure: standard library only; no clock, no files. Reading schedules/*.toml (with line numbers for the
messages), merging clinic files and the dry run are in recovery.files.plans.

Files
-----
`schedules/<id>_v<version>.toml` is a template; `schedules/clinics/<name>.toml` is a clinic override
file (`based_on` + `based_on_version`; earlier versions stay as `clinics/<name>_v<version>.toml` for
the patients enrolled on them) that may change ANY field of an existing milestone, message,
check-in group, the contact numbers or the quiet hours. The merged result is a new effective template
with id "<base id>+<clinic>" and version "<base version>+<clinic file version>", so an enrolment records
both. Every problem is reported as ``file:line: entry: problem``.

The package: `offsets` (the grammar), `model` (the frozen data classes), `builder` (raw TOML to a
Template, every field checked), `overrides` (per-patient changes), `errors`. Import each name from
the module that holds it (package inits import nothing: tests/system/test_architecture.py).
"""
