"""The re-keying stage: records of the predictions and dead-letter topics -> state events.

A scan prediction, a scan skip (medstream.skip/v1, the routing outcome for an instance no model
is meant for) or a scan dead letter becomes a `StudyEvent` keyed by its StudyInstanceUID;
a vitals prediction becomes a `RiskEvent` keyed by the patient pseudonym. A dead letter carries
the original scan bytes: its identifiers are read from the DICOM header (no pixel data) or the
claim-check envelope. Records that cannot be attributed (no StudyInstanceUID, undecodable)
return the `Unattributed` reason they are counted under; none of them stops the stream.
"""

from __future__ import annotations

import io
from collections.abc import Collection
from datetime import UTC, datetime
from enum import StrEnum

import pydicom

from worker.contracts import (
    InputRecord,
    Prediction,
    RiskEvent,
    Skip,
    StudyEvent,
    decode_output,
    decode_scan_envelope,
    header_lane,
    is_dicom,
    looks_like_json,
)
from worker.errors import PoisonMessage

HEADER_TAGS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "Modality",
               "PatientID")


class Unattributed(StrEnum):
    """Why a record feeds no study or alert (the `reason` label of the unattributed counter)."""

    MISSING_STUDY_UID = "missing_study_uid"  # a scan outcome without StudyInstanceUID
    UNDECODABLE = "undecodable"  # neither a prediction we know nor a readable scan
    OTHER_KIND = "other_kind"  # an outcome of a kind that has no study or alert


def _seen(record: InputRecord) -> datetime:
    return datetime.fromtimestamp(record.timestamp_s, tz=UTC)


def _text(value: object) -> str | None:
    text = str(value or "").strip()
    return text or None


def from_prediction(record: InputRecord) -> StudyEvent | RiskEvent | Unattributed:
    """A scan prediction -> StudyEvent (predicted); a scan skip -> StudyEvent (skipped, reason =
    the skip reason); a vitals prediction -> RiskEvent."""
    try:
        pred = decode_output(record.value)
    except PoisonMessage:
        return Unattributed.UNDECODABLE
    if isinstance(pred, Skip):
        return _skipped(pred, record)
    if pred.kind == "vitals" and pred.patient_id is not None:
        return _risk(pred)
    if pred.kind != "scan":
        return Unattributed.OTHER_KIND
    study, sop = _text(pred.extra.get("study_uid")), _text(pred.extra.get("sop_uid"))
    if study is None or sop is None:
        return Unattributed.MISSING_STUDY_UID
    probabilities = pred.outputs.get("probabilities")
    return StudyEvent(
        study_uid=study, sop_uid=sop, outcome="predicted", seen_at=_seen(record),
        series_uid=_text(pred.extra.get("series_uid")), modality=_text(pred.extra.get("modality")),
        patient_id=pred.patient_id, event_time=pred.event_time, model=pred.model,
        model_version=pred.model_version,
        probabilities=probabilities if isinstance(probabilities, dict) else {}, lane=pred.lane)


def _skipped(skip: Skip, record: InputRecord) -> StudyEvent | Unattributed:
    if skip.kind != "scan":
        return Unattributed.OTHER_KIND
    study, sop = _text(skip.extra.get("study_uid")), _text(skip.extra.get("sop_uid"))
    if study is None or sop is None:
        return Unattributed.MISSING_STUDY_UID
    modality = _text(skip.extra.get("modality")) or _text(skip.attributes.get("Modality"))
    return StudyEvent(
        study_uid=study, sop_uid=sop, outcome="skipped", seen_at=_seen(record),
        series_uid=_text(skip.extra.get("series_uid")), modality=modality,
        patient_id=skip.patient_id, event_time=skip.event_time, reason=skip.reason.value,
        lane=skip.lane)


def _risk(pred: Prediction) -> RiskEvent | Unattributed:
    risk, news2 = pred.outputs.get("risk"), pred.outputs.get("news2")
    if not isinstance(risk, (int, float)) or isinstance(risk, bool) or pred.patient_id is None:
        return Unattributed.UNDECODABLE
    return RiskEvent(patient_id=pred.patient_id, event_id=pred.event_id,
                     event_time=pred.event_time, risk=float(risk), model=pred.model,
                     model_version=pred.model_version,
                     news2=news2 if isinstance(news2, dict) else {}, lane=pred.lane)


def scan_identifiers(value: bytes) -> dict[str, str | None] | None:
    """StudyInstanceUID, SeriesInstanceUID, SOPInstanceUID, Modality, PatientID of a scan
    event (DICOM header or claim-check envelope); None when neither can be read."""
    if is_dicom(value):
        try:
            ds = pydicom.dcmread(io.BytesIO(value), stop_before_pixels=True,
                                 specific_tags=list(HEADER_TAGS))
            return {tag: _text(ds.get(tag)) for tag in HEADER_TAGS}
        except Exception:  # noqa: BLE001 - pydicom raises many types on corrupt input
            return None
    if looks_like_json(value):
        try:
            env = decode_scan_envelope(value)
        except PoisonMessage:
            return None
        return {"StudyInstanceUID": env.study_uid, "SeriesInstanceUID": env.series_uid,
                "SOPInstanceUID": env.sop_uid, "Modality": env.modality,
                "PatientID": env.patient_id}
    return None


def from_deadletter(record: InputRecord,
                    scan_topics: Collection[str]) -> StudyEvent | Unattributed:
    """A scan's dead letter (from either lane's topic, docs/lanes.md) -> StudyEvent (outcome
    dead_lettered, reason = error.type)."""
    headers = dict(record.headers)
    origin = headers.get("source.topic", b"").decode("utf-8", "replace")
    if origin not in scan_topics:
        return Unattributed.OTHER_KIND
    ids = scan_identifiers(record.value)
    if ids is None:
        return Unattributed.UNDECODABLE
    study = ids["StudyInstanceUID"]
    if study is None:
        return Unattributed.MISSING_STUDY_UID
    # no SOPInstanceUID: the input's place in the scans topic identifies it on re-delivery
    where = "/".join(headers.get(h, b"").decode("utf-8", "replace")
                     for h in ("source.topic", "source.partition", "source.offset"))
    return StudyEvent(
        study_uid=study, sop_uid=ids["SOPInstanceUID"] or f"offset:{where}",
        outcome="dead_lettered", seen_at=_seen(record), series_uid=ids["SeriesInstanceUID"],
        modality=ids["Modality"], patient_id=ids["PatientID"],
        reason=headers.get("error.type", b"unknown").decode("utf-8", "replace"),
        lane=header_lane(headers))
