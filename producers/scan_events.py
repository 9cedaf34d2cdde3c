"""DICOM bytes -> a de-identified `scans` event (raw Part-10 bytes, or a claim-check envelope).

Key = StudyInstanceUID and event id = SOPInstanceUID, both as published (remapped when
de-identification is on), so publishing the same file twice gives the same key and event id.
An instance without a patient identifier carries the header `patient-identity: unknown`.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pydicom
from pydicom import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import get_decoder
from pydicom.pixels.utils import get_expected_length
from pydicom.uid import UID

from producers.claimcheck import ClaimCheckStore, envelope
from producers.deid.dicom import BurnedInAnnotation, deidentify
from producers.deid.pseudonym import UNKNOWN_PATIENT, Pseudonymizer
from producers.priority import ROUTINE_PRIORITY, Priority, dicom_priority
from producers.publisher import Headers
from worker.errors import DeadLetterReason, PoisonMessage

_ENVELOPE_HEADROOM = 4096  # keys and headers travel next to the value


@dataclass(frozen=True)
class ScanEvent:
    """One message for the `scans` topic."""

    event_id: str
    key: bytes
    value: bytes
    headers: Headers
    claim_checked: bool
    priority: Priority = ROUTINE_PRIORITY  # the lane the dataset asks for (producers/priority.py)


def read_dicom(data: bytes) -> Dataset:
    """Parse a DICOM Part-10 file; PoisonMessage (reason slug) when it is unusable."""
    try:
        ds = pydicom.dcmread(io.BytesIO(data))
    except InvalidDicomError as exc:
        raise PoisonMessage(DeadLetterReason.NOT_DICOM, "not a DICOM Part-10 file (no DICM preamble)") from exc
    except Exception as exc:  # pydicom raises many types on truncated/corrupt files
        raise PoisonMessage(DeadLetterReason.DICOM_DECODE, f"corrupt DICOM: {type(exc).__name__}: {exc}") from exc
    for keyword in ("StudyInstanceUID", "SOPInstanceUID"):
        if not str(ds.get(keyword, "") or "").strip():
            raise PoisonMessage(DeadLetterReason.MISSING_UID, f"DICOM file has no {keyword}")
    _check_pixels(ds)
    return ds


def decodable_syntax(uid: str) -> bool:
    """An installed pydicom decoder handles pixel data in transfer syntax `uid`."""
    try:
        return get_decoder(UID(uid)).is_available
    except NotImplementedError:  # no decoder exists (video, JPEG-XL, private syntaxes)
        return False


def _check_pixels(ds: Dataset) -> None:
    """Pixel data present, in a transfer syntax the worker can decode, and, for native transfer
    syntaxes, long enough for the dimensions."""
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise PoisonMessage(DeadLetterReason.NO_PIXEL_DATA, "DICOM file has no pixel data")
    if "PixelData" not in ds or ds.file_meta.get("TransferSyntaxUID") is None:
        return
    syntax = ds.file_meta.TransferSyntaxUID
    if not decodable_syntax(syntax):
        raise PoisonMessage(DeadLetterReason.UNSUPPORTED_TRANSFER_SYNTAX,
                            f"no installed decoder for transfer syntax {syntax.name[:80]!r}")
    if syntax.is_compressed:
        return
    try:  # pydicom's length knows YBR_FULL_422 subsampling and 1-bit packing
        expected = int(get_expected_length(ds, unit="bytes"))
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise PoisonMessage(DeadLetterReason.DICOM_DECODE, f"image pixel module incomplete: {exc}") from exc
    if len(ds.PixelData or b"") < expected:
        raise PoisonMessage(DeadLetterReason.TRUNCATED_PIXEL_DATA,
            f"pixel data is {len(ds.PixelData or b'')} bytes, dimensions need {expected}",
        )


def patient_unknown(ds: Dataset) -> bool:
    """No patient identifier came with the instance (empty, or the per-study UNKNOWN- pseudonym)."""
    patient = str(ds.get("PatientID", "") or "").strip()
    return not patient or patient.startswith(UNKNOWN_PATIENT)


def encode(ds: Dataset) -> bytes:
    """Serialise a dataset as a DICOM Part-10 file."""
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def build_scan_event(
    data: bytes,
    *,
    pseudonyms: Pseudonymizer | None,
    max_message_bytes: int,
    store: ClaimCheckStore,
    rules: Sequence[Mapping[str, str]] = (),
) -> ScanEvent:
    """Validate, de-identify (when `pseudonyms` is given) and wrap one DICOM file.

    Files larger than `max_message_bytes` are written to `store` and sent as an envelope.
    Raises PoisonMessage for unusable input. `rules`: the STAT rules (docs/lanes.md).
    """
    ds = read_dicom(data)
    priority = dicom_priority(ds, rules)
    if pseudonyms is not None:
        try:
            ds = deidentify(ds, pseudonyms)
        except BurnedInAnnotation as exc:
            raise PoisonMessage(DeadLetterReason.BURNED_IN_ANNOTATION, str(exc)) from exc
        data = encode(ds)
    study_uid, sop_uid = str(ds.StudyInstanceUID), str(ds.SOPInstanceUID)
    headers: Headers = [("event-id", sop_uid.encode())]
    if patient_unknown(ds):
        headers.append(("patient-identity", b"unknown"))
    if len(data) + _ENVELOPE_HEADROOM <= max_message_bytes:
        headers.append(("content-type", b"application/dicom"))
        return ScanEvent(sop_uid, study_uid.encode(), data, headers, False, priority)
    uri = store.put(sop_uid, data)
    value = envelope(
        event_id=sop_uid,
        uri=uri,
        data=data,
        study_uid=study_uid,
        series_uid=str(ds.get("SeriesInstanceUID", "")),
        sop_uid=sop_uid,
        patient_id=str(ds.get("PatientID", "")),
        modality=str(ds.get("Modality", "")),
    )
    headers.append(("content-type", b"application/json"))
    return ScanEvent(sop_uid, study_uid.encode(), value, headers, True, priority)
