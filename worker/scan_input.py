"""Scan event inputs: claim-check resolution, DICOM parsing with its checks, event times.

Blocking (file I/O, parsing): worker/scan_routing.py's `prepare_scan` calls these in a thread
pool. Claim-check URIs are `file://` URIs or plain paths that must resolve below an allowed
root; anything else is refused. Errors never quote paths or identifiers.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import unquote, urlparse

import pydicom
import pydicom.config
from pydicom.valuerep import DA, DT, TM

from worker.contracts import (
    is_dicom,
)
from worker.errors import DeadLetterReason, PoisonMessage


def quiet_pydicom() -> None:
    """Stop pydicom from logging invalid element values: they may be patient identifiers."""
    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE


@dataclass(frozen=True)
class ClaimCheckPolicy:
    """Where claim-check files may live and how large they may be."""

    root: Path | None
    max_bytes: int


def resolve_uri(uri: str, policy: ClaimCheckPolicy) -> Path:
    """The local file a claim-check `uri` names; PoisonMessage(DeadLetterReason.URI_REFUSED) when not allowed."""
    parsed = urlparse(uri)
    if parsed.scheme == "file" and parsed.netloc in ("", "localhost"):
        raw = unquote(parsed.path)
    elif parsed.scheme == "" and not parsed.netloc:
        raw = uri
    else:
        raise PoisonMessage(DeadLetterReason.URI_REFUSED, f"claim-check scheme {parsed.scheme!r} is not supported")
    if policy.root is None:
        raise PoisonMessage(DeadLetterReason.URI_REFUSED, "claim-check URIs are disabled (MEDSTREAM_SCAN_URI_ROOT unset)")
    root = policy.root.resolve()
    path = (root / raw).resolve()  # an absolute `raw` replaces root; relative ones sit below it
    if not path.is_relative_to(root):
        raise PoisonMessage(DeadLetterReason.URI_REFUSED, "claim-check path lies outside the allowed root")
    return path


def read_claim_check(path: Path, max_bytes: int) -> bytes:
    """The bytes of a claim-check file, bounded by `max_bytes`."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise PoisonMessage(DeadLetterReason.OVERSIZE, f"claim-check file of {size} bytes exceeds {max_bytes}")
        return path.read_bytes()
    except OSError as exc:
        raise PoisonMessage(DeadLetterReason.URI_UNREADABLE, f"claim-check file unreadable: {type(exc).__name__}") from exc


def parse_dicom(data: bytes, *, defer_size: int | None = None) -> pydicom.Dataset:
    """Parse a DICOM Part-10 file; values longer than `defer_size` bytes (the pixel data) stay
    in `data` until first accessed. PoisonMessage(DeadLetterReason.DICOM_DECODE) when it cannot
    be parsed."""
    if not is_dicom(data):
        raise PoisonMessage(DeadLetterReason.DICOM_DECODE, "no DICOM Part-10 preamble ('DICM' at byte 128)")
    try:
        return pydicom.dcmread(io.BytesIO(data), defer_size=defer_size)
    except Exception as exc:  # pydicom raises many types on corrupt input
        raise PoisonMessage(DeadLetterReason.DICOM_DECODE, f"cannot parse DICOM: {type(exc).__name__}") from exc


def check_dicom(ds: pydicom.Dataset) -> pydicom.Dataset:
    """`ds` with every element converted now (deferred values read): a corrupt VR raises
    PoisonMessage(DeadLetterReason.DICOM_DECODE) here, not later; so does a missing
    SOPInstanceUID."""
    try:
        for _element in ds:
            pass
        sop_uid = str(ds.get("SOPInstanceUID", "") or "").strip()
    except Exception as exc:  # pydicom raises many types on corrupt input
        raise PoisonMessage(DeadLetterReason.DICOM_DECODE, f"cannot parse DICOM: {type(exc).__name__}") from exc
    if not sop_uid:
        raise PoisonMessage(DeadLetterReason.DICOM_DECODE, "DICOM dataset has no SOPInstanceUID")
    return ds


def read_dicom(data: bytes) -> pydicom.Dataset:
    """Parse a DICOM Part-10 file with its checks (`parse_dicom`, then `check_dicom`)."""
    return check_dicom(parse_dicom(data))


def _zone(ds: pydicom.Dataset) -> timezone:
    offset = str(ds.get("TimezoneOffsetFromUTC", "") or "")
    if len(offset) == 5 and offset[0] in "+-" and offset[1:].isdigit():
        minutes = int(offset[1:3]) * 60 + int(offset[3:])
        return timezone(timedelta(minutes=minutes if offset[0] == "+" else -minutes))
    return UTC


def dicom_event_time(ds: pydicom.Dataset) -> datetime | None:
    """Acquisition (else content) date-time as aware UTC; None when absent or unparsable."""
    try:
        for dt_tag in ("AcquisitionDateTime",):
            text = str(ds.get(dt_tag, "") or "")
            if text:
                moment = DT(text)
                if moment.tzinfo is None:
                    moment = moment.replace(tzinfo=_zone(ds))
                return moment.astimezone(UTC)
        for date_tag, time_tag in (("AcquisitionDate", "AcquisitionTime"),
                                   ("ContentDate", "ContentTime")):
            d, t = str(ds.get(date_tag, "") or ""), str(ds.get(time_tag, "") or "")
            if d and t:
                moment = datetime.combine(DA(d), TM(t), tzinfo=_zone(ds))
                return moment.astimezone(UTC)
    except (ValueError, TypeError, OverflowError):
        return None
    return None


def require_deidentified(ds: pydicom.Dataset) -> None:
    """PoisonMessage(DeadLetterReason.NOT_DEIDENTIFIED) unless `ds` declares de-identification:
    PatientIdentityRemoved (0012,0062) = YES and a DeidentificationMethod (0012,0063) or its
    code sequence (0012,0064), as producers/deid/dicom.py writes them."""
    removed = str(ds.get("PatientIdentityRemoved", "") or "").strip().upper() == "YES"
    method = ds.get("DeidentificationMethod") or ds.get("DeidentificationMethodCodeSequence")
    if not (removed and method):
        raise PoisonMessage(DeadLetterReason.NOT_DEIDENTIFIED,
                            "de-identification is required: the instance lacks "
                            "PatientIdentityRemoved=YES and a DeidentificationMethod")
