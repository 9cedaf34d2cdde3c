"""`medstream.prediction/v1`: one model result for one input event."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from worker.contracts.fields import (
    check_schema,
    dump,
    iso,
    json_object,
    optional_text,
    parse_utc,
    text,
)
from worker.contracts.lane import optional_lane
from worker.errors import DeadLetterReason, PoisonMessage

PREDICTION_SCHEMA = "medstream.prediction/v1"
_FIELDS = ("schema", "event_id", "kind", "patient_id", "model", "model_version", "outputs",
           "event_time", "produced_at", "latency_ms", "input_digest", "event_id_conflict", "lane")


@dataclass(frozen=True)
class Prediction:
    """One medstream.prediction/v1 record."""

    event_id: str
    kind: str  # "scan" | "vitals"
    patient_id: str | None
    model: str
    model_version: str
    outputs: dict[str, Any]
    event_time: datetime  # carried at millisecond precision
    produced_at: datetime
    latency_ms: float  # carried rounded to 3 decimals
    extra: dict[str, Any] = field(default_factory=dict)  # study_uid / sop_uid for scans
    input_digest: str | None = None  # "sha256:<hex>" of the input value (worker.contracts.identity)
    event_id_conflict: bool = False  # this worker saw the event id with another digest recently
    lane: str | None = None  # "stat" | "routine": the lane that served it; None: not recorded


def encode_prediction(pred: Prediction) -> bytes:
    """The prediction as compact UTF-8 JSON (NaN/inf are refused)."""
    return dump({
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
        **({"input_digest": pred.input_digest} if pred.input_digest is not None else {}),
        **({"event_id_conflict": True} if pred.event_id_conflict else {}),
        **({"lane": pred.lane} if pred.lane is not None else {}),
    })


def decode_prediction(value: bytes) -> Prediction:
    """Validate a medstream.prediction/v1 record (for consumers, tests and tools)."""
    obj = json_object(value)
    check_schema(obj, PREDICTION_SCHEMA)
    outputs, latency = obj.get("outputs"), obj.get("latency_ms")
    if not isinstance(outputs, dict):
        raise PoisonMessage(DeadLetterReason.SCHEMA, "field 'outputs' must be an object")
    if not isinstance(obj.get("event_id_conflict", False), bool):
        raise PoisonMessage(DeadLetterReason.SCHEMA, "field 'event_id_conflict' must be a boolean")
    if isinstance(latency, bool) or not isinstance(latency, (int, float)) or not math.isfinite(latency):
        raise PoisonMessage(DeadLetterReason.SCHEMA, "field 'latency_ms' must be a number")
    return Prediction(
        event_id=text(obj, "event_id"),
        kind=text(obj, "kind"),
        patient_id=optional_text(obj, "patient_id"),
        model=text(obj, "model"),
        model_version=text(obj, "model_version"),
        outputs=outputs,
        event_time=parse_utc(obj.get("event_time"), "event_time"),
        produced_at=parse_utc(obj.get("produced_at"), "produced_at"),
        latency_ms=float(latency),
        extra={k: v for k, v in obj.items() if k not in _FIELDS},
        input_digest=optional_text(obj, "input_digest"),
        event_id_conflict=obj.get("event_id_conflict", False),
        lane=optional_lane(obj),
    )
