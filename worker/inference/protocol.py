"""What the pipeline needs from an inference service, and what it knows about a model."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class TensorSpec:
    """One tensor as the worker sends/reads it, without the batch dimension (-1 = any)."""

    name: str
    datatype: str  # Triton name: "FP32", ...
    dims: tuple[int, ...]


@dataclass(frozen=True)
class ModelSpec:
    """The contract the worker expects a served model to honour."""

    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]


@dataclass(frozen=True)
class ModelInfo:
    """A served model as read from Triton at start-up."""

    name: str
    version: str  # e.g. "1+sha256.0123abcd4567"
    max_batch_size: int
    labels: tuple[str, ...] = ()
    # Its config.pbtxt string parameters: the declaration of what it is for (modalities,
    # body_parts, input_format, intended_use; worker/routing/declarations.py) and provenance
    parameters: Mapping[str, str] = field(default_factory=dict)
    input_dims: Mapping[str, tuple[int, ...]] = field(default_factory=dict)  # served, no batch axis


class InferenceBackend(Protocol):
    """An inference service; errors are PoisonMessage (this input) or RetryableInference."""

    async def infer(self, model: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batched request; every array's first dimension is the batch."""
        ...

    async def is_ready(self, model: str) -> bool:
        """True when `model` can serve now (used to probe while the breaker is open)."""
        ...
