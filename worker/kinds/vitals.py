"""Vital-sign windows: medstream.vitals/v1 JSON -> vitals_lstm -> risk + forecast."""

from __future__ import annotations

import functools
from collections.abc import Mapping

import numpy as np

from worker.contracts import CHANNELS, VitalsMeta, decode_vitals, is_pseudonym
from worker.errors import DeadLetterReason, PoisonMessage
from worker.inference.protocol import ModelInfo, ModelSpec, TensorSpec
from worker.kinds.base import KindSpec
from worker.pipeline import Kind
from worker.postprocess import vitals_prediction
from worker.preprocess.vitals import WINDOW_LEN, screened_window
from worker.settings import Settings

INPUT = "window"


def vitals_model_spec(name: str) -> ModelSpec:
    """The tensors the worker sends to / reads from the vitals LSTM."""
    return ModelSpec(
        name=name,
        inputs=(TensorSpec(INPUT, "FP32", (WINDOW_LEN, 2 * len(CHANNELS))),),
        outputs=(TensorSpec("risk", "FP32", (1,)), TensorSpec("forecast", "FP32", (len(CHANNELS),))),
    )


def prepare_vitals(value: bytes, *, require_deidentified: bool) -> tuple[VitalsMeta, np.ndarray]:
    """Validate a window, screen its values and build its LSTM input tensor.

    With `require_deidentified` (MEDSTREAM_REQUIRE_DEIDENTIFIED) the patient id must be a
    producer pseudonym; checked last, so that a malformed window keeps its own reason.
    """
    window = decode_vitals(value)
    tensor, implausible, missing = screened_window(window.values)
    if require_deidentified and not is_pseudonym(window.patient_id):
        raise PoisonMessage(DeadLetterReason.NOT_DEIDENTIFIED,
                            "patient_id is not a producer pseudonym (PSN-<32 hex>)")
    return VitalsMeta(window, implausible, missing), tensor


def vitals_kind(settings: Settings, models: Mapping[str, ModelInfo]) -> Kind[VitalsMeta]:
    """Pipeline description of vitals windows (cheap: decoded on the event loop)."""
    return Kind(
        name="vitals",
        models=models,
        input_name=INPUT,
        max_bytes=settings.vitals.max_bytes,
        prepare=functools.partial(prepare_vitals,
                                  require_deidentified=settings.require_deidentified),
        build=vitals_prediction,
    )


VITALS = KindSpec(name="vitals", model_spec=vitals_model_spec, build=vitals_kind)
