"""The wire contracts: every `medstream.*/v1` message is encoded and decoded here, and only here.

Pure (stdlib only), so producers, tools and tests can use it without the worker's runtime.
Decoding failures raise `worker.errors.PoisonMessage` with a `DeadLetterReason`.
"""

from worker.contracts.alert import (
    ALERT_SCHEMA,
    RISK_EVENT_SCHEMA,
    Alert,
    RiskEvent,
    decode_alert,
    decode_risk_event,
    encode_alert,
    encode_risk_event,
)
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
from worker.contracts.skip import (
    SKIP_SCHEMA,
    Skip,
    SkipReason,
    decode_output,
    decode_skip,
    encode_skip,
)
from worker.contracts.study import (
    STUDY_EVENT_SCHEMA,
    STUDY_SCHEMA,
    TICK,
    StudyEvent,
    StudyResult,
    decode_study_event,
    decode_study_result,
    encode_study_event,
    encode_study_result,
    is_tick,
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
    "ALERT_SCHEMA",
    "CHANNELS",
    "PLAUSIBLE",
    "PREDICTION_SCHEMA",
    "RISK_EVENT_SCHEMA",
    "SCAN_SCHEMA",
    "SKIP_SCHEMA",
    "STUDY_EVENT_SCHEMA",
    "STUDY_SCHEMA",
    "TICK",
    "VITALS_SCHEMA",
    "Alert",
    "InputRecord",
    "OutputRecord",
    "Prediction",
    "RiskEvent",
    "Row",
    "ScanEnvelope",
    "ScanMeta",
    "Skip",
    "SkipReason",
    "StudyEvent",
    "StudyResult",
    "VitalsMeta",
    "VitalsWindow",
    "bounded_deadletter",
    "check_size",
    "deadletter_headers",
    "decode_alert",
    "decode_deadletter_stub",
    "decode_output",
    "decode_prediction",
    "decode_risk_event",
    "decode_scan_envelope",
    "decode_skip",
    "decode_study_event",
    "decode_study_result",
    "decode_vitals",
    "encode_alert",
    "encode_prediction",
    "encode_risk_event",
    "encode_scan_envelope",
    "encode_skip",
    "encode_study_event",
    "encode_study_result",
    "encode_vitals",
    "full_deadletter",
    "input_digest",
    "is_dicom",
    "is_pseudonym",
    "is_tick",
    "iso",
    "looks_like_json",
    "parse_utc",
]
