"""A deterministic in-process InferenceBackend for unit tests (never used by the product)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

import numpy as np

from worker.contracts import InputRecord, Prediction
from worker.errors import DeadLetterReason, PoisonMessage
from worker.inference.protocol import ModelInfo
from worker.pipeline import Kind

POISON_VALUE = -999.0  # a row whose first element is this is rejected like INVALID_ARGUMENT


class FakeBackend:
    """Scores rows deterministically; can reject marked rows and fail on cue."""

    def __init__(self, *, failures: list[Exception] | None = None, delay_s: float = 0.0,
                 ready: Callable[[], bool] = lambda: True) -> None:
        self.failures = list(failures or [])
        self.delay_s = delay_s
        self.ready = ready
        self.calls: list[tuple[str, int]] = []
        self.inflight = 0
        self.max_inflight_seen = 0
        self.probes = 0

    async def infer(self, model: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        (batch,) = inputs.values()
        self.calls.append((model, len(batch)))
        self.inflight += 1
        self.max_inflight_seen = max(self.max_inflight_seen, self.inflight)
        try:
            await asyncio.sleep(self.delay_s)
            if self.failures:
                raise self.failures.pop(0)
            flat = batch.reshape(len(batch), -1)
            if (flat[:, 0] == POISON_VALUE).any():
                raise PoisonMessage(DeadLetterReason.INFERENCE_INVALID_ARGUMENT, "rejected by the fake")
            mean = flat.mean(axis=1, dtype=np.float64)
            if model == "vitals_lstm":
                risk = (1 / (1 + np.exp(-mean)))[:, None].astype(np.float32)
                forecast = np.repeat(mean[:, None], 6, axis=1).astype(np.float32)
                return {"risk": risk, "forecast": forecast}
            p = np.clip(mean, 0, 1)
            return {"probabilities": np.stack([1 - p, p], axis=1).astype(np.float32)}
        finally:
            self.inflight -= 1

    async def is_ready(self, model: str) -> bool:
        self.probes += 1
        return self.ready()


def prepare(value: bytes) -> tuple[str, np.ndarray]:
    """Toy kind: b"<id>:<number>" -> tensor full of that number; anything else is poison."""
    if value == b"crash":
        raise ZeroDivisionError("decoder bug")
    try:
        event_id, number = value.decode().split(":")
        return event_id, np.full((2, 2), float(number), np.float32)
    except ValueError as exc:
        raise PoisonMessage(DeadLetterReason.JSON_DECODE, "not id:number") from exc


def build(meta: str, outputs: dict, record: InputRecord, model: ModelInfo, now: datetime) -> Prediction:
    p = float(outputs["probabilities"][1])
    return Prediction(meta, "scan", None, model.name, model.version, {"p": p}, now, now, 0.0)


def toy_kind(max_batch: int = 32, max_bytes: int = 100) -> Kind[str]:
    return Kind("scan", {"scan_cnn": ModelInfo("scan_cnn", "1", max_batch, ("a", "b"))}, "image",
                max_bytes, prepare, build)
