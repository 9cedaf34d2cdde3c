"""Claim-check for scans larger than the broker's message limit.

The DICOM file is written to a store folder (atomically, named by its event id) and a small
JSON envelope (`worker.contracts.ScanEnvelope`) pointing at it travels on the `scans` topic instead.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from worker.contracts import ScanEnvelope, encode_scan_envelope


class ClaimCheckStore:
    """A local folder holding claim-checked DICOM files (`<event_id>.dcm`)."""

    def __init__(self, root: Path) -> None:
        self.root = root.expanduser().resolve()

    def put(self, event_id: str, data: bytes) -> str:
        """Store `data` under `event_id` (idempotent) and return its `file://` URI."""
        self.root.mkdir(parents=True, exist_ok=True)
        target = self.root / f"{_safe_name(event_id)}.dcm"
        if not (target.exists() and target.stat().st_size == len(data)):
            fd, tmp = tempfile.mkstemp(dir=self.root, suffix=".part")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        return target.as_uri()


def _safe_name(event_id: str) -> str:
    """A file name for an event id; UIDs are digits and dots already."""
    if not event_id or any(not (c.isalnum() or c in ".-_") for c in event_id):
        raise ValueError(f"event id not usable as a file name: {event_id!r}")
    return event_id


def envelope(
    *,
    event_id: str,
    uri: str,
    data: bytes,
    study_uid: str,
    series_uid: str,
    sop_uid: str,
    patient_id: str,
    modality: str,
) -> bytes:
    """The JSON envelope published in place of a claim-checked file (deterministic bytes)."""
    return encode_scan_envelope(ScanEnvelope(
        event_id=event_id,
        uri=uri,
        patient_id=patient_id,
        content_type="application/dicom",
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        study_uid=study_uid,
        series_uid=series_uid,
        sop_uid=sop_uid,
        modality=modality,
    ))
