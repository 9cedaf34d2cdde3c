"""Vital-sign windows: medstream.vitals/v1 JSON -> vitals_lstm -> risk + forecast."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from worker.contracts import CHANNELS, VitalsWindow, decode_vitals
from worker.inference.protocol import ModelInfo, ModelSpec, TensorSpec
from worker.kinds.base import KindSpec
from worker.pipeline import Kind
from worker.postprocess import vitals_prediction
from worker.preprocess.vitals import WINDOW_LEN, window_to_tensor
from worker.settings import Settings

INPUT = "window"


def vitals_model_spec(name: str) -> ModelSpec:
    """The tensors the worker sends to / reads from the vitals LSTM."""
    return ModelSpec(
        name=name,
        inputs=(TensorSpec(INPUT, "FP32", (WINDOW_LEN, 2 * len(CHANNELS))),),
        outputs=(TensorSpec("risk", "FP32", (1,)), TensorSpec("forecast", "FP32", (len(CHANNELS),))),
    )


def prepare_vitals(value: bytes) -> tuple[VitalsWindow, np.ndarray]:
    """Validate a window and build its LSTM input tensor."""
    window = decode_vitals(value)
    return window, window_to_tensor(window.values)


def vitals_kind(settings: Settings, models: Mapping[str, ModelInfo]) -> Kind[VitalsWindow]:
    """Pipeline description of vitals windows (cheap: decoded on the event loop)."""
    return Kind(
        name="vitals",
        models=models,
        input_name=INPUT,
        max_bytes=settings.vitals.max_bytes,
        prepare=prepare_vitals,
        build=vitals_prediction,
    )


VITALS = KindSpec(name="vitals", model_spec=vitals_model_spec, build=vitals_kind)
