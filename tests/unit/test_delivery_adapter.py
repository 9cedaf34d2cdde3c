"""The adapter: decoded medstream.study/v1 and medstream.alert/v1 records -> delivery reports."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from medstream_delivery.adapter import record_decoder
from medstream_delivery.outcomes import Rejected, RejectReason
from medstream_delivery.reports import AlertReport, Finding, StudyReport
from worker.contracts.alert import Alert, encode_alert
from worker.contracts.study import StudyResult, encode_study_result

T0 = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)
PATIENT = "PSN-0123456789abcdef0123456789abcdef"
decode = record_decoder("studies", "alerts")


@dataclass
class Record:
    topic: str
    value: bytes


def study_result(revision: int = 1, patient: str | None = PATIENT, models: list | None = None,
                 complete: bool = True) -> StudyResult:
    """A study answered by one model over three instances."""
    model = {"model": "scan_cnn", "model_version": "1+sha256.0123456789ab", "instances": 3,
             "probabilities": {"normal": {"max": 0.4, "mean": 0.3},
                               "pneumonia": {"max": 0.9, "mean": 0.7}},
             "top": {"pneumonia": [{"sop_uid": "2.25.9", "probability": 0.9}]}}
    return StudyResult(
        study_uid="2.25.1001", revision=revision, completion="quiet", complete=complete,
        patient_id=patient, instances={"total": 4, "predicted": 3, "skipped": 1,
                                       "dead_lettered": 0},
        series=[{"series_uid": "2.25.2001", "predicted": 3, "skipped": 1, "dead_lettered": 0}],
        models=[model] if models is None else models, reasons={}, anomalies={},
        missing_required=[], study_time=T0, first_seen=T0, last_seen=T0, produced_at=T0)


def alert(status: str = "raised", seq: int = 0, news2: dict | None = None) -> Alert:
    return Alert(patient_id=PATIENT, episode=1, raised_at=T0, seq=seq, status=status,  # type: ignore[arg-type]
                 risk=0.82, peak_risk=0.9, event_id="hl7-1", event_time=T0,
                 news2={"score": 6, "band": "medium", "subscores": {"rr": 3, "hr": 3},
                        "missing": []} if news2 is None else news2,
                 model="vitals_lstm", model_version="1+x", produced_at=T0)


def test_a_study_result_is_one_report_per_model() -> None:
    (report,) = decode(Record("studies", encode_study_result(study_result())))
    assert isinstance(report, StudyReport)
    assert (report.study_uid, report.patient, report.status, report.revision) == (
        "2.25.1001", PATIENT, "final", 1)
    assert report.findings == (Finding("normal", 0.4, 0.3), Finding("pneumonia", 0.9, 0.7))
    assert report.conclusion.label == "pneumonia" and report.instances == 3
    assert report.images == () and report.complete


def test_amended_and_incomplete_results() -> None:
    (report,) = decode(Record("studies", encode_study_result(study_result(2, complete=False))))
    assert (report.status, report.revision, report.complete) == ("amended", 2, False)


def test_a_study_no_model_answered_has_nothing_to_deliver() -> None:
    assert decode(Record("studies", encode_study_result(study_result(models=[])))) == []


def test_an_alert_record() -> None:
    (report,) = decode(Record("alerts", encode_alert(alert("cleared", 3))))
    assert isinstance(report, AlertReport)
    assert (report.state, report.sequence, report.news2, report.news2_band) == (
        "cleared", 3, 6, "medium")
    assert report.news2_subscores == (("rr", 3), ("hr", 3))
    assert report.episode == alert().alert_id


def test_an_alert_without_a_news2_score() -> None:
    (report,) = decode(Record("alerts", encode_alert(alert(news2={
        "score": None, "band": None, "subscores": {"hr": 3}, "missing": ["rr"]}))))
    assert report.news2 is None and report.news2_band is None


@pytest.mark.parametrize("record", [
    Record("studies", b"not json"),
    Record("alerts", encode_study_result(study_result())),  # wrong schema for the topic
    Record("studies", encode_study_result(study_result(patient=None))),
    Record("studies", encode_study_result(study_result(models=[{"model": "m"}]))),
    Record("other", b"{}"),
])
def test_what_cannot_be_decoded_is_the_records_dead_letter(record: Record) -> None:
    with pytest.raises(Rejected) as caught:
        decode(record)
    assert caught.value.reason is RejectReason.UNDECODABLE
