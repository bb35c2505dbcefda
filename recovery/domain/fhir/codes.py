"""Code systems and codes the FHIR mapping uses; the source of each is in docs/fhir.md."""
from __future__ import annotations

FHIR_VERSION = "4.0.1"
MIME = "application/fhir+json"

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
CPT = "http://www.ama-assn.org/go/cpt"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"  # identifier types (MR)
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
FLAG_CATEGORY = "http://terminology.hl7.org/CodeSystem/flag-category"
FLAG_PRIORITY_EXT = "http://hl7.org/fhir/StructureDefinition/flag-priority"
FLAG_PRIORITY = "http://hl7.org/fhir/flag-priority-code"
PARTICIPATION_MODE = "http://terminology.hl7.org/CodeSystem/v3-ParticipationMode"
COMMUNICATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/communication-category"
BCP47 = "urn:ietf:bcp:47"

# LOINC 72514-3 "Pain severity - 0-10 verbal numeric rating [Score] - Reported"
PAIN_SCORE = ("72514-3", "Pain severity - 0-10 verbal numeric rating [Score] - Reported")
# LOINC 8310-5 "Body temperature" (the FHIR vital-signs profile's code)
BODY_TEMPERATURE = ("8310-5", "Body temperature")
UCUM_UNITS = {"C": ("Cel", "°C"), "F": ("[degF]", "°F")}

# The check-in's 0-10 scales that are pain scores, with the body site they ask about.
PAIN_ITEMS = {"back_pain": "Back", "leg_pain": "Leg", "rib_pain": "Ribs or side",
              "site_pain": "Needle insertion site"}

# CPT 22510-22515 (percutaneous vertebroplasty 22510-22512, vertebral augmentation with cavity
# creation, i.e. balloon kyphoplasty, 22513-22515): how a hospital's Procedure.code is read.
CPT_PROCEDURES = {"22510": "vertebroplasty", "22511": "vertebroplasty", "22512": "vertebroplasty",
                  "22513": "kyphoplasty", "22514": "kyphoplasty", "22515": "kyphoplasty"}
PROCEDURE_WORDS = {"kyphoplasty": "Balloon kyphoplasty", "vertebroplasty": "Vertebroplasty"}

# Alert level -> Flag priority (flag-priority-code: PN none, PL low, PM medium, PH high) and Task.priority.
FLAG_PRIORITIES = {"EMERGENCY": ("PH", "High priority"), "URGENT": ("PM", "Medium priority"),
                   "WATCH": ("PL", "Low priority")}
TASK_PRIORITIES = {"EMERGENCY": "stat", "URGENT": "urgent", "WATCH": "routine"}


def local_system(base: str, name: str) -> str:
    """A code system of this app's own (rule ids, milestones, procedures), under the API's base."""
    return f"{base}/CodeSystem/{name}"


def coding(system: str, code: str, display: str | None = None) -> dict:
    c = {"system": system, "code": code}
    if display:
        c["display"] = display
    return c


def concept(system: str, code: str, display: str | None = None, text: str | None = None) -> dict:
    cc: dict = {"coding": [coding(system, code, display)]}
    if text:
        cc["text"] = text
    return cc
