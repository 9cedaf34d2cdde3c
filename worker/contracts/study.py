"""Study-level messages: the internal per-instance outcome and the `medstream.study/v1` result.

- `medstream.study-event/v1` (internal topic `study-events`, keyed by StudyInstanceUID): what
  became of one instance (predicted, skipped, dead-lettered), re-keyed from the predictions
  and dead-letter topics so that one study lives on one partition.
- `medstream.tick/v1`: a timer record the worker appends to each partition of an internal
  topic it owns, so that completeness is decided in partition order, inside the stream.
- `medstream.study/v1` (topic `studies`, keyed by StudyInstanceUID, log-compacted): one
  result per study revision (docs/studies.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from worker.contracts.fields import (
    check_schema,
    dump,
    iso,
    json_object,
    optional_text,
    parse_utc,
    text,
)
from worker.contracts.lane import LANES, optional_lane
from worker.errors import DeadLetterReason, PoisonMessage

STUDY_EVENT_SCHEMA = "medstream.study-event/v1"
STUDY_SCHEMA = "medstream.study/v1"
TICK_SCHEMA = "medstream.tick/v1"
TICK = dump({"schema": TICK_SCHEMA})
Outcome = Literal["predicted", "skipped", "dead_lettered"]
OUTCOMES: tuple[str, ...] = ("predicted", "skipped", "dead_lettered")


def is_tick(value: bytes | None) -> bool:
    """True for the timer record of an internal topic."""
    return value == TICK


@dataclass(frozen=True)
class StudyEvent:
    """One instance's outcome, keyed by its study."""

    study_uid: str
    sop_uid: str
    outcome: Outcome
    seen_at: datetime  # when the outcome was produced (its Kafka timestamp)
    series_uid: str | None = None
    modality: str | None = None
    patient_id: str | None = None
    event_time: datetime | None = None  # acquisition time, when the instance carried one
    model: str | None = None  # predicted: the model and its version
    model_version: str | None = None
    probabilities: dict[str, float] = field(default_factory=dict)
    reason: str | None = None  # skipped / dead-lettered: why
    lane: str | None = None  # the lane that served the instance (None: its outcome did not say)


def encode_study_event(event: StudyEvent) -> bytes:
    """The event as compact JSON (None fields left out)."""
    body: dict[str, Any] = {
        "schema": STUDY_EVENT_SCHEMA, "study_uid": event.study_uid, "sop_uid": event.sop_uid,
        "outcome": event.outcome, "seen_at": iso(event.seen_at),
        "series_uid": event.series_uid, "modality": event.modality,
        "patient_id": event.patient_id,
        "event_time": None if event.event_time is None else iso(event.event_time),
        "model": event.model, "model_version": event.model_version,
        "probabilities": event.probabilities or None, "reason": event.reason,
        "lane": event.lane,
    }
    return dump({k: v for k, v in body.items() if v is not None})


def _probabilities(value: object) -> dict[str, float]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool)
            and math.isfinite(v) for k, v in value.items()):
        raise PoisonMessage(DeadLetterReason.SCHEMA, "field 'probabilities' must map labels to numbers")
    return {k: float(v) for k, v in value.items()}


def decode_study_event(value: bytes) -> StudyEvent:
    """Validate a medstream.study-event/v1 record."""
    obj = json_object(value)
    check_schema(obj, STUDY_EVENT_SCHEMA)
    outcome = obj.get("outcome")
    if outcome not in OUTCOMES:
        raise PoisonMessage(DeadLetterReason.SCHEMA, f"field 'outcome' must be one of {list(OUTCOMES)}")
    event_time = obj.get("event_time")
    return StudyEvent(
        study_uid=text(obj, "study_uid"), sop_uid=text(obj, "sop_uid"), outcome=outcome,
        seen_at=parse_utc(obj.get("seen_at"), "seen_at"),
        series_uid=optional_text(obj, "series_uid"), modality=optional_text(obj, "modality"),
        patient_id=optional_text(obj, "patient_id"),
        event_time=None if event_time is None else parse_utc(event_time, "event_time"),
        model=optional_text(obj, "model"), model_version=optional_text(obj, "model_version"),
        probabilities=_probabilities(obj.get("probabilities")),
        reason=optional_text(obj, "reason"), lane=optional_lane(obj),
    )


@dataclass(frozen=True)
class StudyResult:
    """One medstream.study/v1 revision. The nested parts are JSON-ready (docs/studies.md)."""

    study_uid: str
    revision: int  # 1 = final; each amendment adds 1
    completion: Literal["quiet", "forced"]
    complete: bool  # False when forced or when a required series is missing
    patient_id: str | None
    instances: dict[str, int]  # total, predicted, skipped, dead_lettered
    series: list[dict[str, Any]]
    models: list[dict[str, Any]]
    reasons: dict[str, dict[str, int]]  # outcome -> reason -> count
    anomalies: dict[str, int]
    missing_required: list[str]
    study_time: datetime | None
    first_seen: datetime
    last_seen: datetime
    produced_at: datetime
    lanes: dict[str, int] = field(default_factory=dict)  # lane -> instances it served

    @property
    def status(self) -> str:
        """`final` for the first revision, `amended` for later ones."""
        return "final" if self.revision == 1 else "amended"

    @property
    def latency_s(self) -> float:
        """Seconds from the last instance's outcome to this result."""
        return round(max(0.0, (self.produced_at - self.last_seen).total_seconds()), 3)


def encode_study_result(result: StudyResult) -> bytes:
    """The result as compact JSON."""
    return dump({
        "schema": STUDY_SCHEMA, "study_uid": result.study_uid, "revision": result.revision,
        "status": result.status, "completion": result.completion, "complete": result.complete,
        "patient_id": result.patient_id, "instances": result.instances, "series": result.series,
        "models": result.models, "reasons": result.reasons, "anomalies": result.anomalies,
        "missing_required": result.missing_required,
        "study_time": None if result.study_time is None else iso(result.study_time),
        "first_seen": iso(result.first_seen), "last_seen": iso(result.last_seen),
        "produced_at": iso(result.produced_at), "latency_s": result.latency_s,
        "lanes": result.lanes,
    })


def _positive_int(obj: dict[str, Any], name: str) -> int:
    value = obj.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PoisonMessage(DeadLetterReason.SCHEMA, f"field {name!r} must be a positive integer")
    return value


def _typed(obj: dict[str, Any], name: str, kind: type) -> Any:
    value = obj.get(name)
    if not isinstance(value, kind):
        raise PoisonMessage(DeadLetterReason.SCHEMA, f"field {name!r} must be a {kind.__name__}")
    return value


def _lanes(value: object) -> dict[str, int]:
    """`lanes` of a study result: absent (a result from before the field) is {}."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
            k in LANES and isinstance(n, int) and not isinstance(n, bool) and n >= 0
            for k, n in value.items()):
        raise PoisonMessage(DeadLetterReason.SCHEMA,
                            f"field 'lanes' must map lanes {list(LANES)} to counts")
    return value


def decode_study_result(value: bytes) -> StudyResult:
    """Validate a medstream.study/v1 record (for consumers, tests and tools)."""
    obj = json_object(value)
    check_schema(obj, STUDY_SCHEMA)
    completion = obj.get("completion")
    if completion not in ("quiet", "forced"):
        raise PoisonMessage(DeadLetterReason.SCHEMA, "field 'completion' must be 'quiet' or 'forced'")
    study_time = obj.get("study_time")
    return StudyResult(
        study_uid=text(obj, "study_uid"), revision=_positive_int(obj, "revision"),
        completion=completion, complete=_typed(obj, "complete", bool),
        patient_id=optional_text(obj, "patient_id"), instances=_typed(obj, "instances", dict),
        series=_typed(obj, "series", list), models=_typed(obj, "models", list),
        reasons=_typed(obj, "reasons", dict), anomalies=_typed(obj, "anomalies", dict),
        missing_required=_typed(obj, "missing_required", list),
        study_time=None if study_time is None else parse_utc(study_time, "study_time"),
        first_seen=parse_utc(obj.get("first_seen"), "first_seen"),
        last_seen=parse_utc(obj.get("last_seen"), "last_seen"),
        produced_at=parse_utc(obj.get("produced_at"), "produced_at"),
        lanes=_lanes(obj.get("lanes")),
    )
