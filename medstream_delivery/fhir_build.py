"""FHIR R4 transaction Bundles for study reports and alerts (pure; fhir.resources R4B models).

Every entry is a conditional create (`request.ifNoneExist` on a deterministic identifier), so a
re-delivered Bundle creates nothing new. Each model is a Device; a study report is a
DiagnosticReport with one Observation per class; an alert is a RiskAssessment whose basis is
the NEWS2 Observation of the same window (its sub-scores as components).
R4B models: DiagnosticReport, Observation, RiskAssessment, Device and Bundle are unchanged
from R4 in the parts used here (docs/delivery.md).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.device import Device
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.riskassessment import RiskAssessment

from medstream_delivery.identity import Patient, Resolver, Study
from medstream_delivery.keys import part_key, report_key
from medstream_delivery.reports import AlertReport, Report, StudyReport

MODEL_SYSTEM = "urn:medstream:model"
LABEL_SYSTEM = "urn:medstream:label:"  # + model name
IDENTIFIER_SYSTEM = "urn:medstream:id"
DICOM_UID_SYSTEM = "urn:dicom:uid"
UCUM = "http://unitsofmeasure.org"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
NEWS2_CODE = {"system": "http://snomed.info/sct", "code": "1104051000000101",
              "display": "Royal College of Physicians NEWS2 (National Early Warning Score 2) "
                         "total score"}
NOT_VERIFIED = "AI result, not verified by a clinician"


def _url(key: str) -> str:
    return f"urn:uuid:{uuid.UUID(hex=key)}"


def _identifier(key: str) -> dict[str, str]:
    return {"system": IDENTIFIER_SYSTEM, "value": key}


def _entry(resource: Any, key: str) -> dict[str, Any]:
    """A conditional-create entry: POST unless a resource with this identifier exists."""
    name = resource.get_resource_type()
    return {"fullUrl": _url(key), "resource": resource,
            "request": {"method": "POST", "url": name,
                        "ifNoneExist": f"identifier={IDENTIFIER_SYSTEM}|{key}"}}


def _time(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


def _patient(patient: Patient) -> dict[str, Any]:
    return {"type": "Patient", "identifier": {"system": patient.system, "value": patient.value}}


def _device(model: str, version: str) -> tuple[Device, str]:
    key = _model_key(model, version)
    device = Device(identifier=[_identifier(key)], deviceName=[{"name": model, "type": "model-name"}],
                    version=[{"value": version}], type={"text": "AI inference model (medstream)"})
    return device, key


def _model_key(model: str, version: str) -> str:
    """The Device key of a model version (shared by every report of that version)."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"{MODEL_SYSTEM}/{model}/{version}").hex


def _quantity(value: float, unit: str, code: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": UCUM, "code": code}


def _study_ref(study: Study) -> dict[str, Any]:
    return {"type": "ImagingStudy",
            "identifier": {"system": DICOM_UID_SYSTEM, "value": f"urn:oid:{study.study_uid}"}}


def _orders(study: Study) -> list[dict[str, Any]]:
    """ServiceRequest references by accession (ACSN) and placer order number (PLAC)."""
    refs = []
    for code, value in (("ACSN", study.accession), ("PLAC", study.order)):
        if value:
            refs.append({"type": "ServiceRequest", "identifier": {
                "type": {"coding": [{"system": V2_0203, "code": code}]}, "value": value}})
    return refs


def study_entries(report: StudyReport, resolver: Resolver, device_url: str) -> list[dict]:
    """The DiagnosticReport of one study report and its Observations (one per class)."""
    patient, study = resolver.patient(report.patient), resolver.study(report.study_uid)
    when = _time(report.study_time or report.produced_at)
    labels = LABEL_SYSTEM + report.model
    entries, results = [], []
    for finding in report.findings:
        key = part_key(report, finding.label)
        mean = None if finding.mean is None else [{
            "code": {"text": "mean over the study's instances"},
            "valueQuantity": _quantity(round(finding.mean, 4), "probability", "1")}]
        observation = Observation(
            identifier=[_identifier(key)],
            status=report.status if report.complete else "preliminary",
            category=[{"coding": [{"system": OBSERVATION_CATEGORY, "code": "imaging"}]}],
            code={"coding": [{"system": labels, "code": finding.label, "display": finding.label}],
                  "text": f"highest instance probability of {finding.label} ({report.model})"},
            subject=_patient(patient), effectiveDateTime=when, issued=_time(report.produced_at),
            valueQuantity=_quantity(round(finding.probability, 4), "probability", "1"),
            component=mean, device={"reference": device_url}, derivedFrom=[_study_ref(study)])
        entries.append(_entry(observation, key))
        results.append({"reference": _url(key)})
    top, key = report.conclusion, report_key(report)
    diagnostic = DiagnosticReport(
        identifier=[_identifier(key)], basedOn=_orders(study) or None,
        status=report.status if report.complete else "partial",
        category=[{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074",
                               "code": "RAD"}]}],
        code={"coding": [{"system": MODEL_SYSTEM, "code": report.model}],
              "text": f"AI result of {report.model}"},
        subject=_patient(patient), effectiveDateTime=when, issued=_time(report.produced_at),
        imagingStudy=[_study_ref(study)], result=results,
        conclusion=(f"{top.label} (highest instance probability {top.probability:.2f}) by "
                    f"{report.model} {report.model_version}, revision {report.revision}"
                    f"{'' if report.complete else ', study incomplete'}; {NOT_VERIFIED}"),
        conclusionCode=[{"coding": [{"system": labels, "code": top.label}]}])
    return [_entry(diagnostic, key), *entries]


def _news2(report: AlertReport, patient: dict, when: str) -> tuple[Observation, str]:
    key = part_key(report, "news2")
    return Observation(
        identifier=[_identifier(key)], status="final",
        category=[{"coding": [{"system": OBSERVATION_CATEGORY, "code": "survey"}]}],
        code={"coding": [NEWS2_CODE], "text": "NEWS2 total score"}, subject=patient,
        effectiveDateTime=when, issued=_time(report.produced_at),
        valueInteger=report.news2,
        interpretation=[{"text": f"NEWS2 band {report.news2_band}"}] if report.news2_band else None,
        component=[{"code": {"text": f"NEWS2 sub-score {name}"}, "valueInteger": points}
                   for name, points in report.news2_subscores] or None), key


def alert_entries(report: AlertReport, resolver: Resolver, device_url: str) -> list[dict]:
    """The RiskAssessment of one alert and, when the window has one, its NEWS2 Observation."""
    patient, when = _patient(resolver.patient(report.patient)), _time(report.event_time)
    entries, basis = [], []
    if report.news2 is not None:
        observation, key = _news2(report, patient, when)
        entries.append(_entry(observation, key))
        basis.append({"reference": _url(key)})
    key = report_key(report)
    risk = RiskAssessment(
        identifier=[_identifier(key)], status="final", subject=patient, occurrenceDateTime=when,
        performer={"reference": device_url},
        method={"coding": [{"system": MODEL_SYSTEM, "code": report.model}]},
        code={"text": "risk of clinical deterioration (medstream vitals alert)"},
        basis=basis or None,
        prediction=[{"outcome": {"text": "clinical deterioration"},
                     "probabilityDecimal": round(report.risk, 4)}],
        note=[{"text": f"alert {report.state} (update {report.sequence}); {NOT_VERIFIED}"}])
    return [_entry(risk, key), *entries]


def bundle(reports: Sequence[Report], resolver: Resolver) -> Bundle:
    """One transaction Bundle delivering `reports` (Unmapped propagates from the resolver)."""
    entries: list[dict] = []
    devices: dict[str, str] = {}
    for report in reports:
        device, key = _device(report.model, report.model_version)
        if key not in devices:
            devices[key] = _url(key)
            entries.append(_entry(device, key))
        if isinstance(report, StudyReport):
            entries.extend(study_entries(report, resolver, devices[key]))
        else:
            entries.extend(alert_entries(report, resolver, devices[key]))
    return Bundle(type="transaction", entry=entries)
