"""Pure post-processing: per-record model outputs -> medstream.prediction/v1 records."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np

from worker.contracts import CHANNELS, InputRecord, Prediction, ScanMeta, VitalsMeta
from worker.errors import ConfigurationError, DeadLetterReason, PoisonMessage
from worker.inference.protocol import ModelInfo
from worker.news2 import window_news2

DIGITS = 6


def _finite(values: np.ndarray, name: str) -> list[float]:
    flat = [float(v) for v in np.asarray(values, dtype=np.float64).reshape(-1)]
    if not all(math.isfinite(v) for v in flat):
        raise PoisonMessage(DeadLetterReason.INFERENCE_NON_FINITE, f"model output {name!r} is NaN/inf for this input")
    return [round(v, DIGITS) for v in flat]


def scan_outputs(probabilities: np.ndarray, labels: Sequence[str]) -> dict[str, object]:
    """Class probabilities by name, plus the top class and its probability."""
    probs = _finite(probabilities, "probabilities")
    if len(probs) != len(labels):
        raise ConfigurationError(f"model returned {len(probs)} probabilities for {len(labels)} labels")
    top = max(range(len(probs)), key=probs.__getitem__)
    return {"label": labels[top], "score": probs[top], "probabilities": dict(zip(labels, probs))}


def vitals_outputs(risk: np.ndarray, forecast: np.ndarray) -> dict[str, object]:
    """Deterioration risk in [0, 1] and the next-step forecast per channel (physical units)."""
    (risk_value,) = _finite(risk, "risk")
    values = _finite(forecast, "forecast")
    if len(values) != len(CHANNELS):
        raise ConfigurationError(f"model forecast has {len(values)} values, expected {len(CHANNELS)}")
    return {"risk": risk_value, "forecast": dict(zip(CHANNELS, values))}


def latency_ms(record: InputRecord, produced_at: datetime) -> float:
    """Milliseconds from the input's Kafka timestamp to the prediction (never negative)."""
    return max(0.0, (produced_at.timestamp() - record.timestamp_s) * 1000.0)


def kafka_time(record: InputRecord) -> datetime:
    """The record's Kafka timestamp as an aware UTC datetime."""
    return datetime.fromtimestamp(record.timestamp_s, tz=UTC)


def scan_prediction(meta: ScanMeta, outputs: dict[str, np.ndarray], record: InputRecord,
                    model: ModelInfo, produced_at: datetime) -> Prediction:
    """Prediction for one scan; event time = acquisition/content time, else Kafka time."""
    return Prediction(
        event_id=meta.event_id, kind="scan", patient_id=meta.patient_id,
        model=model.name, model_version=model.version,
        outputs=scan_outputs(outputs["probabilities"], model.labels),
        event_time=meta.event_time or kafka_time(record),
        produced_at=produced_at, latency_ms=latency_ms(record, produced_at),
        extra={"study_uid": meta.study_uid, "sop_uid": meta.sop_uid,
               "series_uid": meta.series_uid, "modality": meta.modality},
    )


def vitals_prediction(meta: VitalsMeta, outputs: dict[str, np.ndarray], record: InputRecord,
                      model: ModelInfo, produced_at: datetime) -> Prediction:
    """Prediction for one vitals window (LSTM risk and forecast, NEWS2 of the window); event
    time = time of its last sample. `quality` names the values masked as implausible and those
    missing, per channel, in the rows the model saw."""
    window = meta.window
    return Prediction(
        event_id=window.event_id, kind="vitals", patient_id=window.patient_id,
        model=model.name, model_version=model.version,
        outputs={**vitals_outputs(outputs["risk"], outputs["forecast"]),
                 "news2": window_news2(window.values)},  # the chart score beside the model's risk
        event_time=window.end_time, produced_at=produced_at,
        latency_ms=latency_ms(record, produced_at),
        extra={"device_id": window.device_id,
               "quality": {"implausible": meta.implausible, "missing": meta.missing}},
    )
