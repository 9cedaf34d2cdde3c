"""Reports for the delivery unit tests (the delivery side's own views, no wire format)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from medstream_delivery.identity import IdentityMap
from medstream_delivery.reports import AlertReport, Finding, ImageRef, StudyReport

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
WHEN = datetime(2024, 3, 1, 10, 30, tzinfo=UTC)
MRN_SYSTEM = "urn:oid:1.2.3.4.5.6"


def study_report(**changes: object) -> StudyReport:
    """A final result of `scan_cnn` for a two-instance study."""
    report = StudyReport(
        study_uid="2.25.1001", patient="PSN-0123456789abcdef0123456789abcdef", status="final",
        revision=1, complete=True, model="scan_cnn", model_version="1+sha256.0123456789ab",
        findings=(Finding("normal", 0.12, 0.1), Finding("pneumonia", 0.88, 0.7)),
        images=(ImageRef("2.25.2001", "2.25.3001", CT_IMAGE),
                ImageRef("2.25.2001", "2.25.3002", CT_IMAGE)),
        instances=2, study_time=WHEN, produced_at=WHEN.replace(minute=45))
    return replace(report, **changes)  # type: ignore[arg-type]


def alert_report(**changes: object) -> AlertReport:
    """A raised alert with NEWS2 7 (band high: RR 3 + SpO2 3 + HR 1)."""
    report = AlertReport(
        patient="PSN-0123456789abcdef0123456789abcdef", episode="ep-1", state="raised",
        sequence=0, risk=0.91, news2=7, news2_band="high",
        news2_subscores=(("rr", 3), ("spo2", 3), ("sbp", 0), ("hr", 1), ("temp", 0)),
        model="vitals_lstm", model_version="1+sha256.ba9876543210", event_time=WHEN,
        produced_at=WHEN.replace(second=5))
    return replace(report, **changes)  # type: ignore[arg-type]


def identity_map(path: Path) -> IdentityMap:
    """A map holding the sample patient, the study's UIDs and its order numbers."""
    report = study_report()
    IdentityMap.record(path, [
        ("patient", report.patient, "MRN-4711"),
        ("uid", report.study_uid, "1.2.826.0.1.3680043.8.498.1"),
        ("uid", "2.25.2001", "1.2.826.0.1.3680043.8.498.2"),
        ("uid", "2.25.3001", "1.2.826.0.1.3680043.8.498.3"),
        ("uid", "2.25.3002", "1.2.826.0.1.3680043.8.498.4"),
        ("accession", report.study_uid, "ACC-42"),
        ("order", report.study_uid, "ORD-7"),
    ])
    return IdentityMap(path, MRN_SYSTEM, "HOSP")
