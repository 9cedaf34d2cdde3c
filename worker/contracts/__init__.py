"""The wire contracts: every `medstream.*/v1` message is encoded and decoded here, and only here.

Pure (stdlib only), so producers, tools and tests can use it without the worker's runtime.
Decoding failures raise `worker.errors.PoisonMessage` with a `DeadLetterReason`.
"""

from worker.contracts.fields import iso, parse_utc
from worker.contracts.prediction import (
    PREDICTION_SCHEMA,
    Prediction,
    decode_prediction,
    encode_prediction,
)
from worker.contracts.records import InputRecord, check_size, deadletter_headers
from worker.contracts.scan import (
    SCAN_SCHEMA,
    ScanEnvelope,
    ScanMeta,
    decode_scan_envelope,
    encode_scan_envelope,
    is_dicom,
    looks_like_json,
)
from worker.contracts.skip import (
    SKIP_SCHEMA,
    Skip,
    SkipReason,
    decode_output,
    decode_skip,
    encode_skip,
)
from worker.contracts.vitals import (
    CHANNELS,
    VITALS_SCHEMA,
    Row,
    VitalsWindow,
    decode_vitals,
    encode_vitals,
)

__all__ = [
    "CHANNELS",
    "PREDICTION_SCHEMA",
    "SCAN_SCHEMA",
    "SKIP_SCHEMA",
    "VITALS_SCHEMA",
    "InputRecord",
    "Prediction",
    "Row",
    "ScanEnvelope",
    "ScanMeta",
    "Skip",
    "SkipReason",
    "VitalsWindow",
    "check_size",
    "deadletter_headers",
    "decode_output",
    "decode_prediction",
    "decode_scan_envelope",
    "decode_skip",
    "decode_vitals",
    "encode_prediction",
    "encode_scan_envelope",
    "encode_skip",
    "encode_vitals",
    "is_dicom",
    "iso",
    "looks_like_json",
    "parse_utc",
]
