"""Scans: DICOM Part-10 bytes or claim-check envelopes -> scan_cnn -> class probabilities."""

from __future__ import annotations

import functools

from worker.contracts import ScanMeta
from worker.inference.protocol import ModelInfo, ModelSpec, TensorSpec
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
    policy = ClaimCheckPolicy(settings.scan_uri_root, settings.max_claimcheck_bytes)
    return Kind(
        name="scan",
        model=model,
        input_name=INPUT,
        max_bytes=settings.max_scan_bytes,
        prepare=functools.partial(load_scan, policy=policy),
        build=scan_prediction,
        offload=True,
    )
