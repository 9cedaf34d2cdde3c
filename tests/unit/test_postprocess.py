"""Post-processing: model outputs -> prediction records (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from worker.contracts import CHANNELS, InputRecord, ScanMeta, VitalsMeta, VitalsWindow
from worker.errors import ConfigurationError, PoisonMessage
from worker.inference.protocol import ModelInfo
from worker.postprocess import (
    latency_ms,
    scan_outputs,
    scan_prediction,
    vitals_outputs,
    vitals_prediction,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
RECORD = InputRecord("t", 0, 5, b"k", b"v", T0.timestamp() - 0.25)


def test_scan_outputs_name_every_class_and_the_top_one() -> None:
    out = scan_outputs(np.array([0.2, 0.7, 0.1], np.float32), ("normal", "pneumonia", "other"))
    assert out["label"] == "pneumonia" and out["score"] == pytest.approx(0.7)
    assert list(out["probabilities"]) == ["normal", "pneumonia", "other"]


def test_scan_outputs_reject_label_mismatch_and_nan() -> None:
    with pytest.raises(ConfigurationError):
        scan_outputs(np.array([0.5, 0.5]), ("only",))
    with pytest.raises(PoisonMessage) as info:
        scan_outputs(np.array([np.nan, 1.0]), ("a", "b"))
    assert info.value.reason == "inference_non_finite"


def test_vitals_outputs_forecast_per_channel() -> None:
    out = vitals_outputs(np.array([0.25], np.float32), np.arange(6, dtype=np.float32))
    assert out == {"risk": 0.25, "forecast": {"hr": 0.0, "spo2": 1.0, "rr": 2.0, "sbp": 3.0,
                                               "dbp": 4.0, "temp": 5.0}}
    with pytest.raises(ConfigurationError):
        vitals_outputs(np.array([0.25]), np.arange(5))


def test_predictions_carry_model_ids_times_and_latency() -> None:
    model = ModelInfo("scan_cnn", "1+sha256.ab", 32, ("a", "b"))
    meta = ScanMeta("sop", "sop", "study", "pseudo", None)
    pred = scan_prediction(meta, {"probabilities": np.array([0.9, 0.1])}, RECORD, model, T0)
    assert (pred.event_id, pred.kind, pred.model, pred.model_version) == ("sop", "scan", "scan_cnn", "1+sha256.ab")
    assert pred.event_time == datetime.fromtimestamp(RECORD.timestamp_s, UTC)  # no DICOM time
    assert pred.latency_ms == pytest.approx(250.0)
    assert pred.extra == {"study_uid": "study", "sop_uid": "sop", "series_uid": None, "modality": None}

    window = VitalsWindow("w", "p", "d", T0, 30.0, [[1.0] * 6] * 3)
    lstm = ModelInfo("vitals_lstm", "1", 64)
    quality = {"implausible": dict.fromkeys(CHANNELS, 0), "missing": dict.fromkeys(CHANNELS, 0)}
    pred = vitals_prediction(VitalsMeta(window, **quality), {"risk": np.array([0.1]), "forecast": np.zeros(6)},
                             RECORD, lstm, T0)
    assert pred.event_time == datetime(2026, 1, 1, 0, 1, tzinfo=UTC)
    assert pred.patient_id == "p" and pred.extra == {"device_id": "d", "quality": quality}


def test_latency_is_never_negative() -> None:
    assert latency_ms(InputRecord("t", 0, 0, None, b"", T0.timestamp() + 5), T0) == 0.0
