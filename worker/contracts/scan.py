"""`medstream.scan/v1`: a scan event is raw DICOM Part-10 bytes or this claim-check envelope."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from worker.contracts.fields import check_schema, dump, json_object, optional_text, text
from worker.errors import DeadLetterReason, PoisonMessage

SCAN_SCHEMA = "medstream.scan/v1"
MAX_URI_CHARS = 4096


@dataclass(frozen=True)
class ScanEnvelope:
    """The claim-check form of a scan event: the DICOM file lies at `uri`.

    The worker needs `event_id`, `uri` and `patient_id`; the rest describes the stored file
    (producers fill it in; decoding keeps it when well-typed and ignores it otherwise).
    """

    event_id: str
    uri: str
    patient_id: str | None = None
    content_type: str | None = None
    size_bytes: int | None = None
    sha256: str | None = None
    study_uid: str | None = None
    series_uid: str | None = None
    sop_uid: str | None = None
    modality: str | None = None


@dataclass(frozen=True)
class ScanMeta:
    """What a prediction needs to know about a scan (no pixels)."""

    event_id: str
    sop_uid: str
    study_uid: str | None
    patient_id: str | None
    event_time: datetime | None
    series_uid: str | None = None  # for study-level results (worker/studies/)
    modality: str | None = None


def is_dicom(value: bytes) -> bool:
    """True for a DICOM Part-10 file: 128-byte preamble followed by b"DICM"."""
    return len(value) >= 132 and value[128:132] == b"DICM"


def looks_like_json(value: bytes) -> bool:
    """True when the first non-blank byte opens a JSON object."""
    return value.lstrip()[:1] == b"{"


def encode_scan_envelope(envelope: ScanEnvelope) -> bytes:
    """The envelope as compact JSON with sorted keys (deterministic bytes); None fields are left out."""
    body = {k: v for k, v in asdict(envelope).items() if v is not None}
    return dump({"schema": SCAN_SCHEMA, **body}, sort_keys=True)


def _described(obj: dict[str, Any]) -> dict[str, Any]:
    """The descriptive fields that are present and well-typed."""
    out: dict[str, Any] = {}
    for name in ("content_type", "sha256", "study_uid", "series_uid", "sop_uid", "modality"):
        if isinstance(obj.get(name), str):
            out[name] = obj[name]
    size = obj.get("size_bytes")
    if isinstance(size, int) and not isinstance(size, bool):
        out["size_bytes"] = size
    return out


def decode_scan_envelope(value: bytes) -> ScanEnvelope:
    """Validate a medstream.scan/v1 claim-check envelope."""
    obj = json_object(value)
    check_schema(obj, SCAN_SCHEMA)
    uri = obj.get("uri")
    if not isinstance(uri, str) or not uri or len(uri) > MAX_URI_CHARS:
        raise PoisonMessage(DeadLetterReason.SCHEMA, "field 'uri' must be a non-empty string")
    return ScanEnvelope(
        event_id=text(obj, "event_id"),
        uri=uri,
        patient_id=optional_text(obj, "patient_id"),
        **_described(obj),
    )
