"""Scans: DICOM Part-10 bytes or claim-check envelopes -> scan_cnn -> class probabilities."""

from __future__ import annotations

import functools
from collections.abc import Mapping

import numpy as np

from worker.contracts import ScanMeta
from worker.errors import ConfigurationError
from worker.inference.protocol import ModelInfo, ModelSpec, TensorSpec
from worker.kinds.base import KindSpec
from worker.pipeline import Kind
from worker.postprocess import scan_prediction
from worker.preprocess.scan import IMAGE_SIZE
from worker.scan_input import ClaimCheckPolicy, load_scan
from worker.settings import Settings

INPUT = "image"


def scan_model_spec(name: str) -> ModelSpec:
    """The tensors the worker sends to / reads from the scan CNN."""
    return ModelSpec(
        name=name,
        inputs=(TensorSpec(INPUT, "FP32", (1, IMAGE_SIZE, IMAGE_SIZE)),),
        outputs=(TensorSpec("probabilities", "FP32", (-1,)),),
    )


def scan_kind(settings: Settings, model: ModelInfo) -> Kind[ScanMeta]:
    """Pipeline description of scan events (decoded in the thread pool)."""
    policy = ClaimCheckPolicy(settings.scan.uri_root, settings.scan.max_claimcheck_bytes)
    return Kind(
        name="scan",
        model=model,
        input_name=INPUT,
        max_bytes=settings.scan.max_bytes,
        prepare=functools.partial(load_scan, policy=policy,
                                  require_deid=settings.require_deidentified),
        build=scan_prediction,
        offload=True,
    )


def large_messages(settings: Settings) -> dict[str, str]:
    """Scans up to the broker-wide message limit (larger files travel by claim-check)."""
    return {"max.message.bytes": str(settings.max_message_bytes)}


def check_labels(model: ModelInfo, outputs: Mapping[str, np.ndarray]) -> None:
    """The CNN's config names its labels, one per probability it returns."""
    if not model.labels:
        raise ConfigurationError(
            f"model {model.name!r} has no 'labels' parameter in its config.pbtxt")
    returned = outputs["probabilities"].shape[-1]
    if returned != len(model.labels):
        raise ConfigurationError(f"model {model.name!r} returns {returned} probabilities but "
                                 f"its config names {len(model.labels)} labels")


SCAN = KindSpec(name="scan", model_spec=scan_model_spec, build=scan_kind,
                topic_configs=large_messages, check=check_labels)
