"""One exception root for the worker; every failure is classified by type.

- `PoisonMessage`: the input itself is bad. It goes to the dead-letter topic with a
  `DeadLetterReason` (producers reject it with the same reason instead of publishing it).
- `RetryableInference`: the inference service is down/overloaded. Back off, retry, never commit.
- `ConfigurationError`: the worker cannot start (bad settings, model mismatch). Fail fast.
"""

from __future__ import annotations

import logging
import traceback
from enum import StrEnum
from pathlib import Path
from typing import Self

log = logging.getLogger(__name__)

SCAN, VITALS, PRODUCERS = "scan", "vitals", "producers"
"""Where a reason can arise: the worker's two kinds (`kind` metric label), and the producers."""
_BOTH = (SCAN, VITALS)


class DeadLetterReason(StrEnum):
    """Why a message can never be served. The values are a public contract: the `error.type`
    dead-letter header and the `reason` metric label (dashboards and alert rules match them).

    Each member carries `kinds` (where it can arise) and `meaning` (one line, docs/worker.md).
    """

    kinds: tuple[str, ...]
    meaning: str

    def __new__(cls, value: str, kinds: tuple[str, ...], meaning: str) -> Self:
        member = str.__new__(cls, value)
        member._value_ = value
        member.kinds = kinds
        member.meaning = meaning
        return member

    ALL_MISSING = "all_missing", (VITALS,), "every value of the vital-sign window is missing"
    BURNED_IN_ANNOTATION = ("burned_in_annotation", (PRODUCERS,),
                            "the instance declares burned-in annotation (BurnedInAnnotation=YES)")
    DECODE_ERROR = "decode_error", _BOTH, "a decoder failed unexpectedly on this input (a bug)"
    DICOM_DECODE = ("dicom_decode", (SCAN, PRODUCERS),
                    "not a readable DICOM Part-10 file, or no SOPInstanceUID")
    FORMAT = "format", (SCAN,), "a scan value that is neither DICOM Part-10 nor a JSON envelope"
    IMPLAUSIBLE = ("implausible", (VITALS,),
                   "a channel of the window is mostly outside its physiological range")
    INFERENCE_INVALID_ARGUMENT = ("inference_invalid_argument", _BOTH,
                                  "Triton rejected the input tensor (INVALID_ARGUMENT)")
    INFERENCE_NON_FINITE = "inference_non_finite", _BOTH, "the model answered NaN/inf for this input"
    INTERNAL_ERROR = ("internal_error", _BOTH,
                      "the worker failed unexpectedly on this input after decoding (a bug)")
    JSON_DECODE = "json_decode", _BOTH, "not a UTF-8 JSON object"
    MISSING_UID = "missing_uid", (PRODUCERS,), "the DICOM file has no StudyInstanceUID or SOPInstanceUID"
    MODALITY_LUT = "modality_lut", (SCAN,), "the DICOM modality LUT / rescale cannot be applied"
    NO_PIXEL_DATA = "no_pixel_data", (SCAN, PRODUCERS), "the DICOM dataset has no pixel data"
    NON_FINITE = "non_finite", _BOTH, "NaN/inf pixels, or more than half the vital values NaN/inf"
    NON_IMAGE = ("non_image", (SCAN,),
                 "the SOP class is not an image storage class (RT Dose, SEG, SR, PDF, waveform, ...)")
    NOT_DEIDENTIFIED = ("not_deidentified", _BOTH,
                        "de-identification is required and the input does not declare it")
    NOT_DICOM = "not_dicom", (PRODUCERS,), "the file has no DICOM Part-10 preamble"
    OVERSIZE = "oversize", _BOTH, "the message, claim-check file or decoded pixels exceed a size limit"
    PIXEL_DECODE = "pixel_decode", (SCAN,), "the pixel data cannot be decoded into a numeric image"
    SCHEMA = "schema", _BOTH, "a required field is missing or has the wrong type or value"
    SCHEMA_VERSION = "schema_version", _BOTH, "a version of the schema this worker does not serve"
    SHAPE = "shape", _BOTH, "the image or the window rows have the wrong shape or cell types"
    TRUNCATED_PIXEL_DATA = ("truncated_pixel_data", (PRODUCERS,),
                            "the pixel data is shorter than the image dimensions need")
    UNSUPPORTED_TRANSFER_SYNTAX = ("unsupported_transfer_syntax", (PRODUCERS,),
                                   "no installed decoder handles the file's transfer syntax")
    URI_REFUSED = "uri_refused", (SCAN,), "the claim-check URI is not allowed (scheme, root, disabled)"
    URI_UNREADABLE = "uri_unreadable", (SCAN,), "the claim-check file cannot be read"
    WINDOW = "window", (SCAN,), "the DICOM window centre/width is invalid"


def reasons_for(kind: str) -> tuple[DeadLetterReason, ...]:
    """The reasons `kind` ("scan", "vitals" or "producers") can produce."""
    return tuple(r for r in DeadLetterReason if kind in r.kinds)


class MedstreamError(Exception):
    """Root of every exception medstream raises on purpose."""


class ConfigurationError(MedstreamError):
    """Start-up cannot continue: invalid settings, missing model, tensor mismatch."""


class PoisonMessage(MedstreamError):
    """A message that can never be served; it becomes a dead letter.

    `reason` (a `DeadLetterReason`, never a free string) is the `reason` metric label and the
    `error.type` header. The message text must not contain patient identifiers.
    """

    def __init__(self, reason: DeadLetterReason, message: str) -> None:
        if not isinstance(reason, DeadLetterReason):
            raise TypeError(f"PoisonMessage reason must be a DeadLetterReason, not {reason!r}")
        super().__init__(message)
        self.reason = reason


def unexpected(exc: BaseException, reason: DeadLetterReason, doing: str) -> PoisonMessage:
    """A bug met while `doing` something with one input, as that input's dead letter.

    The message names the exception type and the innermost code location, never the exception
    text (decoders quote element values, which can be identifiers); logged once as a warning.
    """
    frames = traceback.extract_tb(exc.__traceback__)
    where = f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "unknown"
    log.warning("unexpected %s at %s while %s", type(exc).__name__, where, doing)
    return PoisonMessage(reason, f"unexpected {type(exc).__name__} at {where} while {doing}")


class RetryableInference(MedstreamError):
    """Inference failed for a reason that may pass (UNAVAILABLE, DEADLINE_EXCEEDED, overload)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
