"""Writing a clinic's plan override in the clinic file format (schedules/clinics/*.toml), for the
versions published at /admin/plan. tomlkit keeps the comments and layout of the version it
starts from, so a clinician's notes in the file survive an edit made in the browser."""
from __future__ import annotations

# tomlkit is imported where a version is written (an admin publishing), not at start-up: it cost
# every process 0.13 s.

from recovery.domain.plan.clinic_changes import Changes
from recovery.domain.plan.errors import TemplateError


def starting_text(*, clinic: str, title: str, based_on: str, based_on_version: int) -> str:
    """The override of a clinic that has none yet: the base template as it is."""
    import tomlkit
    doc = tomlkit.document()
    doc.add(tomlkit.comment(f"The plan of {title}: changes to template {based_on} version {based_on_version}."))
    doc["clinic"], doc["version"], doc["title"] = clinic, 0, title
    doc["based_on"], doc["based_on_version"] = based_on, based_on_version
    return tomlkit.dumps(doc)


def with_changes(text: str, *, clinic: str, version: int, changes: Changes) -> str:
    """`text` as `clinic`'s `version` with the changes laid in (None removes a key, and its
    entry when nothing is left of it). `text` is a version that loaded, so it parses."""
    import tomlkit
    doc = tomlkit.parse(text)
    doc["clinic"], doc["version"] = clinic, version
    for (section, eid), values in changes.items():
        if section not in doc:
            doc.add(tomlkit.nl())
            doc[section] = tomlkit.table(is_super_table=True)
        entries = doc[section]
        for key, value in values.items():
            if value is None:
                if eid in entries and key in entries[eid]:
                    del entries[eid][key]
                continue
            if eid not in entries:
                entries[eid] = tomlkit.table()
            entries[eid][key] = value
        if eid in entries and not entries[eid]:
            del entries[eid]
    return tomlkit.dumps(doc)


def with_version(text: str, label: str, version: int) -> str:
    """An imported file renumbered as the clinic's next version (its comments kept)."""
    import tomlkit
    from tomlkit.exceptions import TOMLKitError
    try:
        doc = tomlkit.parse(text)
    except TOMLKitError as e:  # the loader has read it already; kept for a file tomlkit reads differently
        raise TemplateError(label, getattr(e, "line", 1) or 1, "", f"TOML syntax error: {e}") from None
    doc["version"] = version
    return tomlkit.dumps(doc)
