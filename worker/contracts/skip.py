"""`medstream.skip/v1`: an input that is valid but that no model is meant for.

A skip is the third outcome of an input besides a prediction and a dead letter. It goes to the
predictions topic, keyed like a prediction (the input's event id), so a consumer reads exactly
one record per input in one place and tells the two apart by `schema`. It carries why
(`reason`: a `SkipReason`, plus the routing rule when one decided) and the non-identifying
attributes that decided it (Modality, BodyPartExamined, SOPClassUID, ...), never free text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
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
from worker.contracts.prediction import Prediction, decode_prediction
from worker.errors import DeadLetterReason, PoisonMessage

SKIP_SCHEMA = "medstream.skip/v1"
_FIELDS = ("schema", "event_id", "kind", "patient_id", "outcome", "reason", "rule", "attributes",
           "event_time", "produced_at", "latency_ms", "input_digest", "lane")


class SkipReason(StrEnum):
    """Why an input was skipped: the `reason` field and the `reason` label of
    `medstream_skipped_total` (docs/routing.md)."""

    NO_ROUTE = "no_route"  # no routing rule matched
    NON_IMAGE = "non_image"  # the SOP class is not an image storage class (SR, PDF, SEG, ...)
    RULE = "rule"  # a rule with `skip:` matched (its name and text are in `rule`)


@dataclass(frozen=True)
class Skip:
    """One medstream.skip/v1 record."""

    event_id: str
    kind: str
    patient_id: str | None
    reason: SkipReason
    rule: dict[str, Any] | None  # {"name", "line", "text"} of the deciding rule, else None
    attributes: dict[str, Any]  # the routing attributes that decided (never identifiers)
    event_time: datetime
    produced_at: datetime
    latency_ms: float
    extra: dict[str, Any] = field(default_factory=dict)  # study_uid / sop_uid for scans
    input_digest: str | None = None  # "sha256:<hex>" of the input value, as in predictions
    lane: str | None = None  # "stat" | "routine", as in predictions


def encode_skip(skip: Skip) -> bytes:
    """The skip record as compact UTF-8 JSON."""
    return dump({
        "schema": SKIP_SCHEMA,
        "event_id": skip.event_id,
        "kind": skip.kind,
        "patient_id": skip.patient_id,
        **skip.extra,
        "outcome": "skipped",
        "reason": skip.reason.value,
        "rule": skip.rule,
        "attributes": skip.attributes,
        "event_time": iso(skip.event_time),
        "produced_at": iso(skip.produced_at),
        "latency_ms": round(skip.latency_ms, 3),
        **({"input_digest": skip.input_digest} if skip.input_digest is not None else {}),
        **({"lane": skip.lane} if skip.lane is not None else {}),
    })


def decode_skip(value: bytes) -> Skip:
    """Validate a medstream.skip/v1 record (for consumers, tests and tools)."""
    obj = json_object(value)
    check_schema(obj, SKIP_SCHEMA)
    reason, rule, attributes = obj.get("reason"), obj.get("rule"), obj.get("attributes")
    latency = obj.get("latency_ms")
    if reason not in set(SkipReason):
        raise PoisonMessage(DeadLetterReason.SCHEMA, f"field 'reason' must be one of {[r.value for r in SkipReason]}")
    if rule is not None and not isinstance(rule, dict):
        raise PoisonMessage(DeadLetterReason.SCHEMA, "field 'rule' must be an object or null")
    if not isinstance(attributes, dict):
        raise PoisonMessage(DeadLetterReason.SCHEMA, "field 'attributes' must be an object")
    if isinstance(latency, bool) or not isinstance(latency, (int, float)) or not math.isfinite(latency):
        raise PoisonMessage(DeadLetterReason.SCHEMA, "field 'latency_ms' must be a number")
    return Skip(
        event_id=text(obj, "event_id"),
        kind=text(obj, "kind"),
        patient_id=optional_text(obj, "patient_id"),
        reason=SkipReason(reason),
        rule=rule,
        attributes=attributes,
        event_time=parse_utc(obj.get("event_time"), "event_time"),
        produced_at=parse_utc(obj.get("produced_at"), "produced_at"),
        latency_ms=float(latency),
        extra={k: v for k, v in obj.items() if k not in _FIELDS},
        input_digest=optional_text(obj, "input_digest"),
        lane=optional_lane(obj),
    )


def decode_output(value: bytes) -> Prediction | Skip:
    """A record of the predictions topic, by its schema: a prediction or a skip."""
    if json_object(value).get("schema") == SKIP_SCHEMA:
        return decode_skip(value)
    return decode_prediction(value)
