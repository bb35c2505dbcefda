"""Bulk export of a clinic's record (issue 15): one NDJSON file per resource type, as the FHIR Bulk
Data Access IG lays an export out (`<Type>.ndjson`, one resource per line), plus the manifest its
`$export` status answer would carry. Every patient exported is a PHI read: one audit row each."""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from recovery.domain.fhir import resources as fr
from recovery.services.fhir import Reader
from recovery.store import audit


def export_clinic(reader: Reader, out_dir: Path, *, request_id: str | None = None) -> dict[str, int]:
    """Writes the files; returns {resource type: count}. Files are written whole, then renamed, so a
    reader never sees half of one."""
    out_dir.mkdir(parents=True, exist_ok=True)
    by_type: dict[str, list[dict]] = defaultdict(list)
    for p in reader.clinic_patients():
        for r in reader.everything(p):
            if r["resourceType"] != "Questionnaire":
                by_type[r["resourceType"]].append(r)
    by_type["Questionnaire"].append(fr.questionnaire(reader.base))
    counts = {}
    output = []
    for kind in sorted(by_type):
        path = out_dir / f"{kind}.ndjson"
        tmp = path.with_suffix(".ndjson.tmp")
        with tmp.open("w", encoding="utf-8") as f:
            for r in by_type[kind]:
                f.write(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n")
        tmp.replace(path)
        counts[kind] = len(by_type[kind])
        output.append({"type": kind, "url": path.name, "count": counts[kind]})
    manifest = {"transactionTime": fr.instant(reader.now), "request": f"{reader.base}/$export",
                "requiresAccessToken": True, "output": output, "error": []}
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    for pid in sorted(reader.shown):
        audit.record(reader.session, at=reader.now, actor_type="system", actor_id=None, action="fhir_exported",
                     patient_id=pid, subject_type="patient", subject_id=pid,
                     detail={"clinic": reader.clinic.slug}, request_id=request_id)
    return counts
