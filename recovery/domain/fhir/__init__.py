"""FHIR R4 mapping (issue 15; docs/fhir.md): plain dicts of the app's rows in, FHIR resources as
plain dicts out. Standard library only, no clock: every instant is passed in."""
