"""Deterministic identities: the same report always gets the same key, control id and UIDs, so
a re-delivery is recognised by each target (FHIR conditional create, HL7 MSH-10, SR UIDs)."""

from __future__ import annotations

import hashlib

from medstream_delivery.reports import Report, StudyReport

MSH10_CHARS = 20  # HL7 v2.5 MSH-10 (ST) is at most 20 characters


def _digest(*parts: str) -> bytes:
    return hashlib.sha256("\x00".join(parts).encode("utf-8")).digest()


def report_key(report: Report) -> str:
    """32 hex characters naming one delivery unit (study+model+version+revision, or alert)."""
    if isinstance(report, StudyReport):
        parts = ("study", report.study_uid, report.model, report.model_version,
                 str(report.revision))
    else:
        parts = ("alert", report.patient, report.episode, report.state, str(report.sequence))
    return _digest(*parts).hex()[:32]


def part_key(report: Report, part: str) -> str:
    """The key of a part of a report (one Observation of it): 32 hex characters."""
    return _digest("part", report_key(report), part).hex()[:32]


def control_id(report: Report) -> str:
    """HL7 MSH-10: the report key cut to 20 characters (80 bits)."""
    return report_key(report)[:MSH10_CHARS]


def uid(*parts: str) -> str:
    """A DICOM UID under the 2.25 root (PS3.5 B.2) derived from `parts`."""
    return "2.25." + str(int.from_bytes(_digest("uid", *parts)[:16], "big"))


def sr_series_uid(report: StudyReport) -> str:
    """One SR series per study and model: every revision lands in the same series."""
    return uid("sr-series", report.study_uid, report.model)


def sr_instance_uid(report: StudyReport) -> str:
    """One SR instance per study, model, version and revision (a re-send is the same)."""
    return uid("sr-instance", report_key(report))

