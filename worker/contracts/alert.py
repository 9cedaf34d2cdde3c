"""Patient-level alert messages: the internal window risk and the `medstream.alert/v1` record.

- `medstream.risk-event/v1` (internal topic `alert-events`, keyed by patient pseudonym): one
  vitals window's LSTM risk and NEWS2, re-keyed from the predictions topic so that one
  patient lives on one partition.
- `medstream.alert/v1` (topic `alerts`, keyed by `alert_id` = patient pseudonym + the time
  the episode was raised): `raised`, `updated`, `cleared` or `expired` (docs/studies.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from worker.contracts.fields import check_schema, dump, iso, json_object, parse_utc, text
from worker.contracts.lane import optional_lane
from worker.errors import DeadLetterReason, PoisonMessage

RISK_EVENT_SCHEMA = "medstream.risk-event/v1"
ALERT_SCHEMA = "medstream.alert/v1"
AlertStatus = Literal["raised", "updated", "cleared", "expired"]
ALERT_STATUSES: tuple[str, ...] = ("raised", "updated", "cleared", "expired")


@dataclass(frozen=True)
class RiskEvent:
    """One vitals window's risk for one patient."""

    patient_id: str
    event_id: str
    event_time: datetime  # the window's last sample
    risk: float
    model: str
    model_version: str
    news2: dict[str, Any]  # worker.news2.window_news2 of the same window
    lane: str | None = None  # the lane that served the window (None: its prediction did not say)


def encode_risk_event(event: RiskEvent) -> bytes:
    """The event as compact JSON."""
    return dump({
        "schema": RISK_EVENT_SCHEMA, "patient_id": event.patient_id, "event_id": event.event_id,
        "event_time": iso(event.event_time), "risk": event.risk, "model": event.model,
        "model_version": event.model_version, "news2": event.news2,
        **({"lane": event.lane} if event.lane is not None else {}),
    })


def _risk(value: object) -> float:
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            or not 0.0 <= value <= 1.0):
        raise PoisonMessage(DeadLetterReason.SCHEMA, "field 'risk' must be a number in [0, 1]")
    return float(value)


def decode_risk_event(value: bytes) -> RiskEvent:
    """Validate a medstream.risk-event/v1 record."""
    obj = json_object(value)
    check_schema(obj, RISK_EVENT_SCHEMA)
    news2 = obj.get("news2")
    if not isinstance(news2, dict):
        raise PoisonMessage(DeadLetterReason.SCHEMA, "field 'news2' must be an object")
    return RiskEvent(
        patient_id=text(obj, "patient_id"), event_id=text(obj, "event_id"),
        event_time=parse_utc(obj.get("event_time"), "event_time"), risk=_risk(obj.get("risk")),
        model=text(obj, "model"), model_version=text(obj, "model_version"), news2=news2,
        lane=optional_lane(obj),
    )


@dataclass(frozen=True)
class Alert:
    """One medstream.alert/v1 record: a step of one patient's alert episode."""

    patient_id: str
    episode: int  # 1, 2, ... per patient while the patient's state is kept
    raised_at: datetime  # event time of the window that raised the episode
    seq: int  # 0 = raised, then 1, 2, ... for each later record of the episode
    status: AlertStatus
    risk: float  # the window that produced this record
    peak_risk: float  # highest risk of the episode so far
    news2: dict[str, Any]  # NEWS2 of the same window
    event_id: str  # that window's event id
    event_time: datetime
    model: str
    model_version: str
    produced_at: datetime
    lane: str | None = None  # the lane that served that window (None: not recorded)

    @property
    def alert_id(self) -> str:
        """The Kafka key: patient pseudonym + the event time that raised the episode."""
        return f"{self.patient_id}:{iso(self.raised_at)}"


def encode_alert(alert: Alert) -> bytes:
    """The alert as compact JSON."""
    return dump({
        "schema": ALERT_SCHEMA, "alert_id": alert.alert_id, "patient_id": alert.patient_id,
        "episode": alert.episode, "raised_at": iso(alert.raised_at), "seq": alert.seq,
        "status": alert.status, "risk": alert.risk, "peak_risk": alert.peak_risk,
        "news2": alert.news2, "event_id": alert.event_id, "event_time": iso(alert.event_time),
        "model": alert.model, "model_version": alert.model_version,
        "produced_at": iso(alert.produced_at),
        **({"lane": alert.lane} if alert.lane is not None else {}),
    })


def _count(obj: dict[str, Any], name: str, low: int) -> int:
    value = obj.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise PoisonMessage(DeadLetterReason.SCHEMA, f"field {name!r} must be an integer >= {low}")
    return value


def decode_alert(value: bytes) -> Alert:
    """Validate a medstream.alert/v1 record (for consumers, tests and tools)."""
    obj = json_object(value)
    check_schema(obj, ALERT_SCHEMA)
    status, news2 = obj.get("status"), obj.get("news2")
    if status not in ALERT_STATUSES:
        raise PoisonMessage(DeadLetterReason.SCHEMA, f"field 'status' must be one of {list(ALERT_STATUSES)}")
    if not isinstance(news2, dict):
        raise PoisonMessage(DeadLetterReason.SCHEMA, "field 'news2' must be an object")
    return Alert(
        patient_id=text(obj, "patient_id"), episode=_count(obj, "episode", 1),
        raised_at=parse_utc(obj.get("raised_at"), "raised_at"), seq=_count(obj, "seq", 0),
        status=status, risk=_risk(obj.get("risk")), peak_risk=_risk(obj.get("peak_risk")),
        news2=news2, event_id=text(obj, "event_id"),
        event_time=parse_utc(obj.get("event_time"), "event_time"),
        model=text(obj, "model"), model_version=text(obj, "model_version"),
        produced_at=parse_utc(obj.get("produced_at"), "produced_at"),
        lane=optional_lane(obj),
    )
