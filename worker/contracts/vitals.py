"""`medstream.vitals/v1`: one window of vital signs of one patient/device on a regular grid."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from worker.contracts.fields import (
    check_schema,
    dump,
    in_range,
    iso,
    json_object,
    parse_utc,
    text,
)
from worker.errors import DeadLetterReason, PoisonMessage

VITALS_SCHEMA = "medstream.vitals/v1"
CHANNELS: tuple[str, ...] = ("hr", "spo2", "rr", "sbp", "dbp", "temp")
"""Channel order of every vitals window: bpm, %, breaths/min, mmHg, mmHg, degrees C."""
PLAUSIBLE: dict[str, tuple[float, float]] = {
    "hr": (0.0, 350.0), "spo2": (0.0, 100.0), "rr": (0.0, 200.0),
    "sbp": (0.0, 300.0), "dbp": (0.0, 300.0), "temp": (25.0, 45.0),
}
"""Inclusive range of a value a bedside monitor can report for a living patient, per channel
(docs/worker.md, "Physiological plausibility"); a value outside is treated as missing and
counted. Rows whose dbp is not below their sbp lose both."""
MAX_INTERVAL_S = 3600.0
"""Longest sampling interval of a window (an hourly chart); longer ones are refused."""
Row = list[float | None]


@dataclass(frozen=True)
class VitalsWindow:
    """A medstream.vitals/v1 window; `values` rows are in `CHANNELS` order (None = missing)."""

    event_id: str
    patient_id: str
    device_id: str
    start: datetime  # aware; carried on the wire at millisecond precision
    interval_s: float
    values: list[Row]

    @property
    def end_time(self) -> datetime:
        """Time of the last sample of the window (decode_vitals checks that it is in range)."""
        return self.start + timedelta(seconds=self.interval_s * (len(self.values) - 1))


@dataclass(frozen=True)
class VitalsMeta:
    """What a vitals prediction needs: the window, and per channel the values masked as
    implausible and the values missing (after masking) in the rows the model saw."""

    window: VitalsWindow
    implausible: dict[str, int] = field(default_factory=dict)
    missing: dict[str, int] = field(default_factory=dict)


def encode_vitals(window: VitalsWindow) -> bytes:
    """The window as compact UTF-8 JSON with every channel (NaN/inf are refused: use None)."""
    return dump({
        "schema": VITALS_SCHEMA,
        "event_id": window.event_id,
        "patient_id": window.patient_id,
        "device_id": window.device_id,
        "start": iso(window.start),
        "interval_s": window.interval_s,
        "channels": list(CHANNELS),
        "values": window.values,
    })


def _channel_order(channels: object) -> list[int]:
    """Index into the message's columns for each of CHANNELS (-1 = channel absent)."""
    if (not isinstance(channels, list) or not channels
            or not all(isinstance(c, str) for c in channels)):
        raise PoisonMessage(DeadLetterReason.SCHEMA, "field 'channels' must be a non-empty list of names")
    unknown = sorted(set(channels) - set(CHANNELS))
    if unknown or len(set(channels)) != len(channels):
        raise PoisonMessage(DeadLetterReason.SCHEMA, f"'channels' must be distinct names among {list(CHANNELS)}")
    return [channels.index(c) if c in channels else -1 for c in CHANNELS]


_CANONICAL_ORDER = list(range(len(CHANNELS)))


def _reorder(values: object, order: list[int], width: int) -> list[list[Any]]:
    if not isinstance(values, list) or not values:
        raise PoisonMessage(DeadLetterReason.SHAPE, "field 'values' must be a non-empty list of rows")
    if (order == _CANONICAL_ORDER and set(map(type, values)) == {list}
            and set(map(len, values)) == {width}):
        return values  # already in CHANNELS order: nothing to move
    rows = []
    for row in values:
        if not isinstance(row, list) or len(row) != width:
            raise PoisonMessage(DeadLetterReason.SHAPE, f"every row of 'values' must have {width} entries (one per channel)")
        rows.append([row[i] if i >= 0 else None for i in order])
    return rows


def decode_vitals(value: bytes) -> VitalsWindow:
    """Validate a medstream.vitals/v1 window (cell values are checked by preprocessing)."""
    obj = json_object(value)
    check_schema(obj, VITALS_SCHEMA)
    interval = obj.get("interval_s")
    if (isinstance(interval, bool) or not isinstance(interval, (int, float))
            or not math.isfinite(interval) or not 0 < interval <= MAX_INTERVAL_S):
        raise PoisonMessage(DeadLetterReason.SCHEMA, f"field 'interval_s' must be a number in (0, {MAX_INTERVAL_S:g}]")
    order = _channel_order(obj.get("channels"))
    window = VitalsWindow(
        event_id=text(obj, "event_id"),
        patient_id=text(obj, "patient_id"),
        device_id=text(obj, "device_id"),
        start=in_range(parse_utc(obj.get("start"), "start"), "start"),
        interval_s=float(interval),
        values=_reorder(obj.get("values"), order, len(obj["channels"])),
    )
    try:
        in_range(window.end_time, "end")  # the last sample: start + interval_s x (rows - 1)
    except OverflowError as exc:
        raise PoisonMessage(DeadLetterReason.SCHEMA, "the window ends after the year 9999") from exc
    return window
