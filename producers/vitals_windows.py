"""Pure windowing of vital-sign series into vitals messages (`worker.contracts.VitalsWindow`).

A `Series` is one patient/device on a regular time grid (`start`, `interval_s`) with rows in
`CHANNELS` order; None marks a missing sample. Windows never invent values: a grid slot that
received no sample stays None.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from worker.contracts import CHANNELS, Row, VitalsWindow, encode_vitals, iso


@dataclass(frozen=True)
class Series:
    """Samples of one patient/device on a regular grid (row i is at start + i * interval_s)."""

    patient_id: str
    device_id: str
    start: datetime
    interval_s: float
    rows: list[Row]


@dataclass(frozen=True)
class Window:
    """One window, ready to encode."""

    patient_id: str
    device_id: str
    start: datetime
    interval_s: float
    values: list[Row]

    @property
    def all_missing(self) -> bool:
        """True when no cell holds a value (the worker would dead-letter it)."""
        return all(v is None for row in self.values for v in row)


def empty_row() -> Row:
    """A row with every channel missing."""
    return [None] * len(CHANNELS)


def clean(value: object) -> float | None:
    """A finite float, or None for missing/NaN/inf/empty values."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "nan", "null")):
        return None
    number = float(value)  # ValueError for text: the caller decides what that means
    return number if math.isfinite(number) else None


def to_grid(
    samples: Iterable[tuple[datetime, Row]], start: datetime, interval_s: float
) -> list[Row]:
    """Place timestamped rows on the grid; later samples fill (not erase) earlier slots.

    Samples before `start` are ignored. Slots nobody sampled stay all-None.
    """
    grid: list[Row] = []
    for moment, row in samples:
        slot = math.floor((moment - start).total_seconds() / interval_s + 1e-9)
        if slot < 0:
            continue
        while len(grid) <= slot:
            grid.append(empty_row())
        grid[slot] = [new if new is not None else old for new, old in zip(row, grid[slot])]
    return grid


def windows(series: Series, length: int, hop: int) -> Iterator[Window]:
    """Full windows of `length` rows every `hop` rows; a series shorter than `length` gives one."""
    rows = series.rows
    if not rows:
        return
    offsets = range(0, len(rows) - length + 1, hop) if len(rows) >= length else range(1)
    for offset in offsets:
        yield Window(
            patient_id=series.patient_id,
            device_id=series.device_id,
            start=series.start + timedelta(seconds=offset * series.interval_s),
            interval_s=series.interval_s,
            values=[list(r) for r in rows[offset : offset + length]],
        )


def event_id(window: Window) -> str:
    """Deterministic id: the same patient, device, start, interval and length give the same id."""
    parts = (
        window.patient_id,
        window.device_id,
        iso(window.start),
        repr(window.interval_s),
        str(len(window.values)),
    )
    return "vw-" + hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:32]


def encode_window(window: Window, event: str | None = None) -> bytes:
    """The vitals message of a window; values rounded to 3 decimals."""
    return encode_vitals(VitalsWindow(
        event_id=event or event_id(window),
        patient_id=window.patient_id,
        device_id=window.device_id,
        start=window.start,
        interval_s=window.interval_s,
        values=[[_round(v) for v in row] for row in window.values],
    ))


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 3)


def channel_row(values: dict[str, float | None]) -> Row:
    """A row in CHANNELS order from a channel->value mapping (absent channels are None)."""
    return [values.get(name) for name in CHANNELS]


def check_channels(names: Sequence[str]) -> None:
    """ValueError naming unknown channels."""
    unknown = sorted(set(names) - set(CHANNELS))
    if unknown:
        raise ValueError(f"unknown channels {unknown}; expected some of {list(CHANNELS)}")
