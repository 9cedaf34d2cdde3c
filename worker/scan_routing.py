"""Scan events -> header -> routing decision -> the chosen model's preprocessing.

Blocking (file I/O, pixel decoding): the pipeline runs `prepare_scan` in a thread pool. Each
instance is parsed once, its large values (the pixel data) deferred: routing reads the header,
so skipped and non-image objects never read or decode their pixels; only a routed instance has
the same dataset checked (`worker.scan_input.check_dicom`: every element converted, the pixel
data read) and preprocessed with the input format its model declares. Errors never quote paths
or identifiers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pydicom
from pydicom.uid import MediaStorageDirectoryStorage

from worker.contracts import (
    ScanEnvelope,
    ScanMeta,
    decode_scan_envelope,
    is_dicom,
    looks_like_json,
)
from worker.errors import DeadLetterReason, PoisonMessage
from worker.pipeline import Routed, Skipped
from worker.preprocess.formats import InputFormat
from worker.routing.attributes import dataset_lookup, reported
from worker.routing.matcher import Router, RouteTo
from worker.routing.rules import SkipAction
from worker.scan_input import (
    ClaimCheckPolicy,
    check_dicom,
    dicom_event_time,
    parse_dicom,
    read_claim_check,
    require_deidentified,
    resolve_uri,
)
from worker.sop_classes import require_image


def scan_bytes(value: bytes, policy: ClaimCheckPolicy) -> tuple[ScanEnvelope | None, bytes]:
    """The DICOM bytes of a scan event (inline, or fetched for a claim-check envelope)."""
    if is_dicom(value):
        return None, value
    if looks_like_json(value):
        envelope = decode_scan_envelope(value)
        return envelope, read_claim_check(resolve_uri(envelope.uri, policy), policy.max_bytes)
    raise PoisonMessage(DeadLetterReason.FORMAT, "neither a DICOM Part-10 file nor a JSON envelope")


HEADER_DEFER_BYTES = 64 * 1024
"""Values longer than this (the pixel data, large private blobs) are read on first access."""


def read_header(data: bytes) -> pydicom.Dataset:
    """The whole dataset with values over HEADER_DEFER_BYTES left unread until accessed: the
    header to route on, and the dataset to preprocess once checked (`check_dicom`).
    PoisonMessage(DICOM_DECODE) when the file cannot be parsed."""
    return parse_dicom(data, defer_size=HEADER_DEFER_BYTES)


def _text(ds: pydicom.Dataset, keyword: str) -> str:
    try:
        return str(ds.get(keyword, "") or "").strip()
    except Exception:  # noqa: BLE001 - a malformed element reads as absent
        return ""


def header_meta(header: pydicom.Dataset, envelope: ScanEnvelope | None) -> ScanMeta:
    """Identifiers of a scan: the event id is the envelope's, else the SOPInstanceUID (a
    DICOMDIR has none: the file meta's MediaStorageSOPInstanceUID stands in for it)."""
    file_meta = getattr(header, "file_meta", None) or pydicom.Dataset()
    sop_uid = _text(header, "SOPInstanceUID")
    if not sop_uid and _text(file_meta, "MediaStorageSOPClassUID") == MediaStorageDirectoryStorage:
        sop_uid = _text(file_meta, "MediaStorageSOPInstanceUID")
    if not sop_uid:
        raise PoisonMessage(DeadLetterReason.DICOM_DECODE, "DICOM dataset has no SOPInstanceUID")
    study = _text(header, "StudyInstanceUID") or None
    patient = _text(header, "PatientID") or None
    series = _text(header, "SeriesInstanceUID") or None
    modality = _text(header, "Modality") or None
    event_id = envelope.event_id if envelope is not None else sop_uid
    if envelope is not None:
        patient = envelope.patient_id or patient
    return ScanMeta(event_id, sop_uid, study, patient, dicom_event_time(header), series, modality)


@dataclass(frozen=True)
class ScanRouting:
    """The router and, per model it routes to, that model's input format."""

    router: Router
    formats: Mapping[str, InputFormat]


def prepare_scan(value: bytes, policy: ClaimCheckPolicy, routing: ScanRouting, *,
                 require_deid: bool = False) -> Routed[ScanMeta] | Skipped[ScanMeta]:
    """Decode one scan event, route it from its header, and preprocess it for its model.

    With `require_deid`, an instance that does not declare de-identification is refused
    (`not_deidentified`) before routing, so no skip record carries raw identifiers either.
    """
    envelope, data = scan_bytes(value, policy)
    header = read_header(data)
    if require_deid:
        require_deidentified(header)
    meta = header_meta(header, envelope)
    lookup = dataset_lookup(header)
    decision = routing.router.decide(lookup)
    if isinstance(decision, RouteTo):
        dataset = check_dicom(header)
        require_image(dataset)  # safety net: the rules' non-image skip decided this already
        return Routed(meta, routing.formats[decision.model].prepare(dataset), decision.model)
    rule = decision.rule
    about = None if rule is None else {
        "name": rule.name, "line": rule.line,
        "text": rule.action.text if isinstance(rule.action, SkipAction) else None}
    return Skipped(meta, decision.reason, about, reported(lookup))
