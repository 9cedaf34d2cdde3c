"""Benchmark inputs: real DICOM files of several sizes and vital-sign windows, each with a unique id.

Scans are real pydicom test files (pydicom / pydicom-data), or DICOMs made from the images
bundled with the imported models' packages (`bundled.py`), re-stamped with a fresh
SOPInstanceUID per message (the prediction key), so every message is a distinct event with
the real pixel payload and real decode cost. The pydicom files' headers say "PA chest
radiograph" so the fixture routing rules of the benchmark worker send them to the measured
model; the bundled ones are chest radiographs and brain MR that the shipped rules route.
"""

from __future__ import annotations

import io
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

import numpy as np
import pydicom
from pydicom.data import get_testdata_file

from worker.contracts import CHANNELS, Row, VitalsWindow, encode_vitals

# size class -> pydicom test file
SCAN_FILES: dict[str, str] = {
    "ct128": "CT_small.dcm",  # 128 x 128 CT, 39 KB
    "ct512": "693_UNCR.dcm",  # 512 x 512 CT, 0.5 MB (pydicom-data)
    "cr2k": "RG1_UNCR.dcm",  # 1955 x 1841 CR radiograph, 7.2 MB (pydicom-data)
}
_VITALS_MEAN = np.array([78.0, 97.0, 16.0, 122.0, 76.0, 36.9])
_VITALS_SD = np.array([6.0, 1.2, 2.5, 9.0, 6.0, 0.25])
_UID_DIGITS = 38
_SOP_MARK = "2.25.1" + "1" * _UID_DIGITS
_STUDY_MARK = "2.25.1" + "2" * _UID_DIGITS
_SERIES_MARK = "2.25.1" + "3" * _UID_DIGITS
MARKS = {"sop": _SOP_MARK, "study": _STUDY_MARK, "series": _SERIES_MARK}
"""Placeholder UIDs of a template (as long as `fixed_uid()` ones), patched per message."""
_VITALS_POOL = 256  # distinct windows; more messages reuse them under new event ids
_EID_MARK = "@@event_id@@"


@dataclass(frozen=True)
class Message:
    """One Kafka record to publish, and the event id its prediction will carry as key."""

    event_id: str
    key: bytes
    value: bytes


def fixed_uid() -> str:
    """A random UUID-derived DICOM UID of fixed length (44 characters, no leading zero)."""
    return f"2.25.1{uuid.uuid4().int % 10**_UID_DIGITS:0{_UID_DIGITS}d}"


def template(ds: pydicom.Dataset) -> bytes:
    """`ds` as Part-10 bytes with placeholder SOP, study and series UIDs (`stamp` fills them)."""
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = _SOP_MARK
    ds.StudyInstanceUID, ds.SeriesInstanceUID = _STUDY_MARK, _SERIES_MARK
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


@cache
def _stamped_template(size_class: str) -> bytes:
    """The real file as a template (`template`), headed as a PA chest radiograph."""
    name = SCAN_FILES[size_class]
    path = get_testdata_file(name)
    if path is None:
        raise FileNotFoundError(f"{name} not found: install pydicom-data (the `train` extra)")
    ds = pydicom.dcmread(path)
    # routed like a PA chest radiograph to the model under measurement (bench e2e's rules);
    # the pixel payload and its decode cost stay the real file's
    ds.Modality, ds.BodyPartExamined, ds.ViewPosition = "DX", "CHEST", "PA"
    return template(ds)


def scan_bytes(size_class: str) -> bytes:
    """The unmodified DICOM file of a size class (for preprocessing and model ceilings)."""
    return Path(get_testdata_file(SCAN_FILES[size_class])).read_bytes()


def stamp(templates: list[bytes], count: int, *, one_study: bool = False) -> list[Message]:
    """`count` messages from the templates in turn, each with a new SOPInstanceUID (the event
    id). With `one_study`, all of them are instances of one study and one series (one key, as
    a CT series arrives); otherwise every message is its own study, spreading evenly over
    partitions. UIDs are patched into the bytes (same length), so making thousands of large
    messages is cheap."""
    marks = re.compile(b"(" + b"|".join(re.escape(m.encode()) for m in MARKS.values()) + b")")
    pieces = [marks.split(t) for t in templates]
    shared = {"study": fixed_uid(), "series": fixed_uid()} if one_study else {}
    out: list[Message] = []
    for n in range(count):
        uids = {"sop": fixed_uid(), "study": shared.get("study") or fixed_uid(),
                "series": shared.get("series") or fixed_uid()}
        fill = {MARKS[k].encode(): v.encode() for k, v in uids.items()}
        value = b"".join(fill.get(piece, piece) for piece in pieces[n % len(pieces)])
        out.append(Message(event_id=uids["sop"], key=uids["study"].encode(), value=value))
    return out


def scan_messages(size_class: str, count: int, *, one_study: bool = False) -> list[Message]:
    """`count` unique messages of a pydicom size class (`stamp`)."""
    return stamp([_stamped_template(size_class)], count, one_study=one_study)


def vitals_window(rng: np.random.Generator, rows: int = 60) -> list[Row]:
    """A plausible adult vital-sign window (random walk around normal values, ~2% missing)."""
    walk = np.cumsum(rng.normal(0.0, 0.15, size=(rows, len(CHANNELS))), axis=0)
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
    patient = f"PSN-{int(rng.integers(0, 64)):032x}"  # the producers' pseudonym form
    window = VitalsWindow(event_id=event_id, patient_id=patient, device_id="bench-monitor",
                          start=start, interval_s=interval_s, values=values)
    return Message(event_id=event_id, key=patient.encode(), value=encode_vitals(window))


def vitals_messages(prefix: str, count: int, seed: int = 0) -> list[Message]:
    """`count` vital-sign windows with event ids `<prefix>-<n>` (a pool of distinct windows)."""
    rng = np.random.default_rng(seed)
    pool = [vitals_message(_EID_MARK, rng) for _ in range(min(count, _VITALS_POOL))]
    out = []
    for n in range(count):
        event_id = f"{prefix}-{n}"
        template = pool[n % len(pool)]
        out.append(Message(event_id, template.key,
                           template.value.replace(_EID_MARK.encode(), event_id.encode())))
    return out
