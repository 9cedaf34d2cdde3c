"""The wire contracts: every `medstream.*/v1` message is encoded and decoded here, and only here.

Pure (stdlib only), so producers, tools and tests can use it without the worker's runtime.
Decoding failures raise `worker.errors.PoisonMessage` with a `DeadLetterReason`.
"""

from worker.contracts.fields import iso, parse_utc
from worker.contracts.identity import input_digest, is_pseudonym
from worker.contracts.prediction import (
    PREDICTION_SCHEMA,
    Prediction,
    decode_prediction,
    encode_prediction,
)
from worker.contracts.records import (
    InputRecord,
    OutputRecord,
    bounded_deadletter,
    check_size,
    deadletter_headers,
    decode_deadletter_stub,
    full_deadletter,
)
from worker.contracts.scan import (
    SCAN_SCHEMA,
    ScanEnvelope,
    ScanMeta,
    decode_scan_envelope,
    encode_scan_envelope,
    is_dicom,
    looks_like_json,
)
from worker.contracts.vitals import (
    CHANNELS,
    PLAUSIBLE,
    VITALS_SCHEMA,
    Row,
    VitalsMeta,
    VitalsWindow,
    decode_vitals,
    encode_vitals,
)

__all__ = [
    "CHANNELS",
    "PLAUSIBLE",
    "PREDICTION_SCHEMA",
    "SCAN_SCHEMA",
    "VITALS_SCHEMA",
    "InputRecord",
    "OutputRecord",
    "Prediction",
    "Row",
    "ScanEnvelope",
    "ScanMeta",
    "VitalsMeta",
    "VitalsWindow",
    "bounded_deadletter",
    "check_size",
    "deadletter_headers",
    "decode_deadletter_stub",
    "decode_prediction",
    "decode_scan_envelope",
    "decode_vitals",
    "encode_prediction",
    "encode_scan_envelope",
    "encode_vitals",
    "full_deadletter",
    "input_digest",
    "is_dicom",
    "is_pseudonym",
    "iso",
    "looks_like_json",
    "parse_utc",
]
