"""Benchmark inputs: real DICOM files of several sizes and vital-sign windows, each with a unique id.

Scans are real pydicom test files (pydicom / pydicom-data) re-stamped with a fresh
SOPInstanceUID per message (the prediction key), so every message is a distinct event with
the real pixel payload and real decode cost.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache

import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

# size class -> pydicom test file
SCAN_FILES: dict[str, str] = {
    "ct128": "CT_small.dcm",  # 128 x 128 CT, 39 KB
    "ct512": "693_UNCR.dcm",  # 512 x 512 CT, 0.5 MB (pydicom-data)
    "cr2k": "RG1_UNCR.dcm",  # 1955 x 1841 CR radiograph, 7.2 MB (pydicom-data)
}
VITALS_CHANNELS = ("hr", "spo2", "rr", "sbp", "dbp", "temp")
_VITALS_MEAN = np.array([78.0, 97.0, 16.0, 122.0, 76.0, 36.9])
_VITALS_SD = np.array([6.0, 1.2, 2.5, 9.0, 6.0, 0.25])


@dataclass(frozen=True)
class Message:
    """One Kafka record to publish, and the event id its prediction will carry as key."""

    event_id: str
    key: bytes
    value: bytes


@cache
def _template(size_class: str) -> pydicom.Dataset:
    name = SCAN_FILES[size_class]
    path = get_testdata_file(name)
    if path is None:
        raise FileNotFoundError(f"{name} not found: install pydicom-data (the `train` extra)")
    return pydicom.dcmread(path)


def scan_bytes(size_class: str) -> bytes:
    """The unmodified DICOM file of a size class (for preprocessing and model ceilings)."""
    return open(get_testdata_file(SCAN_FILES[size_class]), "rb").read()


def scan_messages(size_class: str, count: int, *, study_uid: str | None = None) -> list[Message]:
    """`count` copies of a real DICOM file, each with a new SOPInstanceUID.

    With `study_uid`, all slices belong to one study (one key, as a CT series arrives);
    otherwise every message is its own study, spreading evenly over partitions.
    """
    ds = _template(size_class).copy()
    out: list[Message] = []
    for index in range(count):
        sop = generate_uid()
        study = study_uid or generate_uid()
        ds.SOPInstanceUID = sop
        ds.file_meta.MediaStorageSOPInstanceUID = sop
        ds.StudyInstanceUID = study
        if study_uid is not None:
            ds.InstanceNumber = index + 1
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        out.append(Message(event_id=sop, key=study.encode(), value=buf.getvalue()))
    return out


def vitals_window(rng: np.random.Generator, rows: int = 60) -> list[list[float | None]]:
    """A plausible adult vital-sign window (random walk around normal values, ~2% missing)."""
    walk = np.cumsum(rng.normal(0.0, 0.15, size=(rows, len(VITALS_CHANNELS))), axis=0)
    values = _VITALS_MEAN + _VITALS_SD * (walk + rng.normal(0.0, 0.3, size=walk.shape))
    missing = rng.random(values.shape) < 0.02
    return [
        [None if missing[r, c] else round(float(values[r, c]), 2) for c in range(values.shape[1])]
        for r in range(rows)
    ]


def vitals_message(
    event_id: str, rng: np.random.Generator, *, end: datetime | None = None, interval_s: float = 1.0
) -> Message:
    """One `medstream.vitals/v1` window whose last sample is at `end` (default: now)."""
    values = vitals_window(rng)
    end = end or datetime.now(UTC)
    start = end - timedelta(seconds=interval_s * (len(values) - 1))
    patient = f"bench-patient-{rng.integers(0, 64)}"
    body = {
        "schema": "medstream.vitals/v1",
        "event_id": event_id,
        "patient_id": patient,
        "device_id": "bench-monitor",
        "start": start.isoformat().replace("+00:00", "Z"),
        "interval_s": interval_s,
        "channels": list(VITALS_CHANNELS),
        "values": values,
    }
    return Message(event_id=event_id, key=patient.encode(), value=json.dumps(body).encode())


def vitals_messages(prefix: str, count: int, seed: int = 0) -> list[Message]:
    """`count` vital-sign windows with event ids `<prefix>-<n>`."""
    rng = np.random.default_rng(seed)
    return [vitals_message(f"{prefix}-{n}", rng) for n in range(count)]
