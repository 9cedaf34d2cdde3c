"""Typed, versioned messages at the topic boundaries: decode + validate inputs, encode outputs.

Every decode or validation failure raises `PoisonMessage(reason, text)` with a bounded reason
slug; the text never carries patient identifiers or input values. Size limits are checked by
the caller (`check_size`) before anything is decoded.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from worker.errors import PoisonMessage
from worker.preprocess.vitals import CHANNELS

SCAN_SCHEMA = "medstream.scan/v1"
VITALS_SCHEMA = "medstream.vitals/v1"
PREDICTION_SCHEMA = "medstream.prediction/v1"
MAX_ID_CHARS = 256
MAX_ERROR_CHARS = 500


@dataclass(frozen=True)
class InputRecord:
    """One consumed Kafka record, as the pipeline sees it (raw bytes, nothing decoded)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp_s: float  # Kafka record timestamp, seconds since the epoch
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True)
class ScanEnvelope:
    """The claim-check form of a scan event: the DICOM lies at `uri`."""

    event_id: str
    uri: str
    patient_id: str | None = None


@dataclass(frozen=True)
class ScanMeta:
    """What a prediction needs to know about a scan (no pixels)."""

    event_id: str
    sop_uid: str
    study_uid: str | None
    patient_id: str | None
    event_time: datetime | None


@dataclass(frozen=True)
class VitalsWindow:
    """A validated medstream.vitals/v1 window; `values` rows are in `CHANNELS` order."""

    event_id: str
    patient_id: str
    device_id: str
    start: datetime
    interval_s: float
    values: list[list[float | None]]

    @property
    def end_time(self) -> datetime:
        """Time of the last sample of the window."""
        return self.start + timedelta(seconds=self.interval_s * (len(self.values) - 1))


@dataclass(frozen=True)
class Prediction:
    """One medstream.prediction/v1 record."""

    event_id: str
    kind: str  # "scan" | "vitals"
    patient_id: str | None
    model: str
    model_version: str
    outputs: dict[str, Any]
    event_time: datetime
    produced_at: datetime
    latency_ms: float
    extra: dict[str, Any] = field(default_factory=dict)  # study_uid / sop_uid for scans


def check_size(value: bytes, limit: int) -> None:
    """Raise PoisonMessage("oversize") when `value` is longer than `limit` bytes."""
    if len(value) > limit:
        raise PoisonMessage("oversize", f"message of {len(value)} bytes exceeds the {limit}-byte limit")


def is_dicom(value: bytes) -> bool:
    """True for a DICOM Part-10 file: 128-byte preamble followed by b"DICM"."""
    return len(value) >= 132 and value[128:132] == b"DICM"


def looks_like_json(value: bytes) -> bool:
    """True when the first non-blank byte opens a JSON object."""
    return value.lstrip()[:1] == b"{"


def json_object(value: bytes) -> dict[str, Any]:
    """Parse UTF-8 JSON that must be an object; PoisonMessage("json_decode") otherwise."""
    try:
        obj = json.loads(value.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise PoisonMessage("json_decode", f"invalid JSON: {type(exc).__name__} at {_where(exc)}") from exc
    except RecursionError as exc:  # deeply nested arrays/objects
        raise PoisonMessage("json_decode", "invalid JSON: nested too deeply") from exc
    if not isinstance(obj, dict):
        raise PoisonMessage("json_decode", f"expected a JSON object, got {type(obj).__name__}")
    return obj


def _where(exc: Exception) -> str:
    pos = getattr(exc, "pos", None)
    return f"char {pos}" if pos is not None else "start"


def check_schema(obj: dict[str, Any], expected: str) -> None:
    """`schema` must equal `expected`; another version of the same family -> "schema_version"."""
    schema = obj.get("schema")
    if schema == expected:
        return
    family = expected.rsplit("/", 1)[0] + "/"
    if isinstance(schema, str) and schema.startswith(family):
        raise PoisonMessage("schema_version", f"unsupported schema version {schema[:64]!r}, expected {expected!r}")
    raise PoisonMessage("schema", f"field 'schema' must be {expected!r}")


def _text(obj: dict[str, Any], name: str) -> str:
    """A required identifier field: a non-empty string of bounded length."""
    value = obj.get(name)
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_ID_CHARS:
        raise PoisonMessage("schema", f"field {name!r} must be a non-empty string of at most {MAX_ID_CHARS} chars")
    return value


def _optional_text(obj: dict[str, Any], name: str) -> str | None:
    return None if obj.get(name) is None else _text(obj, name)


def parse_utc(text: object, name: str) -> datetime:
    """ISO-8601 timestamp with a zone (or Z) -> aware UTC datetime; PoisonMessage otherwise."""
    if not isinstance(text, str):
        raise PoisonMessage("schema", f"field {name!r} must be an ISO-8601 string")
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise PoisonMessage("schema", f"field {name!r} is not ISO-8601") from exc
    if moment.tzinfo is None:
        raise PoisonMessage("schema", f"field {name!r} must carry a UTC offset (e.g. 'Z')")
    return moment.astimezone(UTC)


def decode_scan_envelope(value: bytes) -> ScanEnvelope:
    """Validate a medstream.scan/v1 claim-check envelope."""
    obj = json_object(value)
    check_schema(obj, SCAN_SCHEMA)
    uri = obj.get("uri")
    if not isinstance(uri, str) or not uri or len(uri) > 4096:
        raise PoisonMessage("schema", "field 'uri' must be a non-empty string")
    return ScanEnvelope(
        event_id=_text(obj, "event_id"),
        uri=uri,
        patient_id=_optional_text(obj, "patient_id"),
    )


def _channel_order(channels: object) -> list[int]:
    """Index into the message's columns for each of CHANNELS (-1 = channel absent)."""
    if (not isinstance(channels, list) or not channels
            or not all(isinstance(c, str) for c in channels)):
        raise PoisonMessage("schema", "field 'channels' must be a non-empty list of names")
    unknown = sorted(set(channels) - set(CHANNELS))
    if unknown or len(set(channels)) != len(channels):
        raise PoisonMessage("schema", f"'channels' must be distinct names among {list(CHANNELS)}")
    return [channels.index(c) if c in channels else -1 for c in CHANNELS]


_CANONICAL_ORDER = list(range(len(CHANNELS)))


def _reorder(values: object, order: list[int], width: int) -> list[list[Any]]:
    if not isinstance(values, list) or not values:
        raise PoisonMessage("shape", "field 'values' must be a non-empty list of rows")
    if (order == _CANONICAL_ORDER and set(map(type, values)) == {list}
            and set(map(len, values)) == {width}):
        return values  # already in CHANNELS order: nothing to move
    rows = []
    for row in values:
        if not isinstance(row, list) or len(row) != width:
            raise PoisonMessage("shape", f"every row of 'values' must have {width} entries (one per channel)")
        rows.append([row[i] if i >= 0 else None for i in order])
    return rows


def decode_vitals(value: bytes) -> VitalsWindow:
    """Validate a medstream.vitals/v1 window (cell values are checked by preprocessing)."""
    obj = json_object(value)
    check_schema(obj, VITALS_SCHEMA)
    interval = obj.get("interval_s")
    if (isinstance(interval, bool) or not isinstance(interval, (int, float))
            or not math.isfinite(interval) or interval <= 0):
        raise PoisonMessage("schema", "field 'interval_s' must be a positive number")
    order = _channel_order(obj.get("channels"))
    return VitalsWindow(
        event_id=_text(obj, "event_id"),
        patient_id=_text(obj, "patient_id"),
        device_id=_text(obj, "device_id"),
        start=parse_utc(obj.get("start"), "start"),
        interval_s=float(interval),
        values=_reorder(obj.get("values"), order, len(obj["channels"])),
    )


def iso(moment: datetime) -> str:
    """UTC ISO-8601 with milliseconds and a Z suffix."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def encode_prediction(pred: Prediction) -> bytes:
    """medstream.prediction/v1 as compact UTF-8 JSON (NaN/inf are refused)."""
    body: dict[str, Any] = {
        "schema": PREDICTION_SCHEMA,
        "event_id": pred.event_id,
        "kind": pred.kind,
        "patient_id": pred.patient_id,
        **pred.extra,
        "model": pred.model,
        "model_version": pred.model_version,
        "outputs": pred.outputs,
        "event_time": iso(pred.event_time),
        "produced_at": iso(pred.produced_at),
        "latency_ms": round(pred.latency_ms, 3),
    }
    return json.dumps(body, separators=(",", ":"), allow_nan=False).encode("utf-8")


def deadletter_headers(
    record: InputRecord, error: PoisonMessage, worker_id: str
) -> list[tuple[str, bytes]]:
    """The original headers plus error.type/error.message/source.*/worker.id (DESIGN.md)."""
    ours = {
        "error.type": error.reason,
        "error.message": str(error)[:MAX_ERROR_CHARS],
        "source.topic": record.topic,
        "source.partition": str(record.partition),
        "source.offset": str(record.offset),
        "worker.id": worker_id,
    }
    kept = [(k, v) for k, v in record.headers if k not in ours]
    return kept + [(k, v.encode("utf-8")) for k, v in ours.items()]

