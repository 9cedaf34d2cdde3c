"""From the decoded `medstream.study/v1` and `medstream.alert/v1` records to the delivery views.

Decoding is `worker.contracts`' (decode_study_result, decode_alert); this module only maps the
decoded records, so a `PoisonMessage` and any malformed nested part (the JSON-ready `models`
list) become the record's `Rejected(UNDECODABLE)`. One report per model of a study; the
study result names its top instances by SOP Instance UID only (no series, no SOP class), so
`images` stays empty and the SR is study-level (docs/delivery.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from medstream_delivery.outcomes import Rejected, RejectReason
from medstream_delivery.reports import AlertReport, Finding, Report, StudyReport
from worker.contracts.alert import Alert, decode_alert
from worker.contracts.study import StudyResult, decode_study_result
from worker.errors import PoisonMessage


def _finding(label: str, values: dict[str, Any]) -> Finding:
    mean = values.get("mean")
    return Finding(str(label), float(values["max"]), None if mean is None else float(mean))


def study_reports(result: StudyResult) -> list[StudyReport]:
    """One report per model that answered the study (none: nothing to deliver)."""
    if result.patient_id is None:
        raise Rejected(RejectReason.UNDECODABLE, "study result without a patient pseudonym")
    reports = []
    for model in result.models:
        findings = tuple(_finding(label, values)
                         for label, values in sorted(model["probabilities"].items()))
        if not findings:
            continue
        reports.append(StudyReport(
            study_uid=result.study_uid, patient=result.patient_id,
            status="final" if result.status == "final" else "amended",
            revision=result.revision, complete=result.complete, model=str(model["model"]),
            model_version=str(model["model_version"]), findings=findings, images=(),
            instances=int(model["instances"]), study_time=result.study_time,
            produced_at=result.produced_at))
    return reports


def alert_report(alert: Alert) -> AlertReport:
    """The report of one alert record, NEWS2 from its `news2` object."""
    news2 = alert.news2
    score, band = news2.get("score"), news2.get("band")
    subscores = news2.get("subscores") or {}
    return AlertReport(
        patient=alert.patient_id, episode=alert.alert_id, state=alert.status,
        sequence=alert.seq, risk=alert.risk, news2=None if score is None else int(score),
        news2_band=None if band is None else str(band),
        news2_subscores=tuple((str(k), int(v)) for k, v in subscores.items()),
        model=alert.model, model_version=alert.model_version, event_time=alert.event_time,
        produced_at=alert.produced_at)


def record_decoder(studies_topic: str, alerts_topic: str) -> Callable[[Any], list[Report]]:
    """Decode a consumed record by its topic; Rejected(UNDECODABLE) when it cannot be."""

    def decode(record: Any) -> list[Report]:
        try:
            if record.topic == studies_topic:
                return list(study_reports(decode_study_result(record.value)))
            if record.topic == alerts_topic:
                return [alert_report(decode_alert(record.value))]
        except PoisonMessage as exc:
            raise Rejected(RejectReason.UNDECODABLE, f"{exc.reason.value}: {exc}") from exc
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise Rejected(RejectReason.UNDECODABLE,
                           f"malformed nested field ({type(exc).__name__})") from exc
        raise Rejected(RejectReason.UNDECODABLE, f"no decoder for topic {record.topic!r}")

    return decode
