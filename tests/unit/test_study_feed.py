"""The study feed maps routing's skip records to `skipped` study outcomes."""

from __future__ import annotations

from datetime import UTC, datetime

from worker.contracts import InputRecord, Skip, SkipReason, StudyEvent, encode_skip
from worker.settings import StudySettings
from worker.studies.feed import Unattributed, from_prediction
from worker.studies.state import apply_instance, close

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
RULE = {"name": "ct", "line": 65, "text": "no CT model is deployed"}


def skip(kind: str = "scan", **extra: str | None) -> bytes:
    ids = {"study_uid": "1.2", "sop_uid": "sop-9", "series_uid": "1.2.3", "modality": "SR"}
    return encode_skip(Skip(
        event_id="sop-9", kind=kind, patient_id="pseudo-1", reason=SkipReason.RULE, rule=RULE,
        attributes={"Modality": "SR"}, event_time=T0, produced_at=T0, latency_ms=1.0,
        extra={**ids, **extra}))


def record(value: bytes) -> InputRecord:
    return InputRecord("predictions", 0, 3, b"sop-9", value, T0.timestamp(), ())


def test_a_scan_skip_is_a_skipped_study_event_with_its_reason() -> None:
    event = from_prediction(record(skip()))
    assert event == StudyEvent(
        study_uid="1.2", sop_uid="sop-9", outcome="skipped", seen_at=T0, series_uid="1.2.3",
        modality="SR", patient_id="pseudo-1", event_time=T0, reason="rule")


def test_a_study_result_counts_the_skip_in_its_series_and_reasons() -> None:
    settings = StudySettings()
    event = from_prediction(record(skip()))
    assert isinstance(event, StudyEvent)
    state, anomalies = apply_instance(None, event, 0, settings)
    _, answer = close(state, "quiet", T0.timestamp() + 60, settings)
    assert anomalies == [] and answer.reasons["skipped"] == {"rule": 1}
    assert answer.instances == {"total": 1, "predicted": 0, "skipped": 1, "dead_lettered": 0}
    assert [(s["series_uid"], s["modality"], s["skipped"]) for s in answer.series] == [
        ("1.2.3", "SR", 1)]


def test_a_skip_without_series_fields_takes_the_modality_from_its_attributes() -> None:
    event = from_prediction(record(skip(series_uid=None, modality=None)))
    assert isinstance(event, StudyEvent)
    assert (event.series_uid, event.modality, event.outcome) == (None, "SR", "skipped")


def test_unattributable_skips_are_counted_not_raised() -> None:
    assert from_prediction(record(skip(study_uid=None))) == Unattributed.MISSING_STUDY_UID
    assert from_prediction(record(skip(kind="vitals"))) == Unattributed.OTHER_KIND
    broken = skip().replace(b'"reason":"rule"', b'"reason":"whim"')
    assert from_prediction(record(broken)) == Unattributed.UNDECODABLE
