"""Inference: the backend protocol, the Triton gRPC backend, batching and resilience."""

from worker.inference.protocol import InferenceBackend, ModelInfo, ModelSpec, TensorSpec

__all__ = ["InferenceBackend", "ModelInfo", "ModelSpec", "TensorSpec"]
