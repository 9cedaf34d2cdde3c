"""TritonBackend against the real server: start-up checks, inference, error classification."""

from __future__ import annotations

import numpy as np
import pytest

from medstream_tools.ports import free_port
from worker.errors import ConfigurationError, PoisonMessage, RetryableInference
from worker.inference.protocol import ModelSpec, TensorSpec
from worker.inference.triton import TritonBackend
from worker.kinds.scan import scan_model_spec
from worker.kinds.vitals import vitals_model_spec
from worker.metrics import Metrics
from worker.settings import Settings

pytestmark = pytest.mark.integration


async def test_start_infer_and_errors(settings: Settings) -> None:
    metrics = Metrics.create()
    backend = TritonBackend(settings.triton_grpc_url, timeout_s=10, metrics=metrics)
    models = await backend.start([scan_model_spec("scan_cnn"), vitals_model_spec("vitals_lstm")])
    try:
        scan, lstm = models["scan_cnn"], models["vitals_lstm"]
        assert (scan.max_batch_size, lstm.max_batch_size) == (32, 64)
        assert len(scan.labels) >= 2 and scan.version.startswith("1+sha256.")

        images = np.random.default_rng(0).random((3, 1, 128, 128), dtype=np.float32)
        out = await backend.infer("scan_cnn", {"image": images})
        assert out["probabilities"].shape == (3, len(scan.labels))
        assert np.allclose(out["probabilities"].sum(axis=1), 1.0, atol=1e-4)
        out = await backend.infer("vitals_lstm", {"window": np.zeros((2, 60, 12), np.float32)})
        assert out["risk"].shape == (2, 1) and out["forecast"].shape == (2, 6)

        with pytest.raises(PoisonMessage) as info:
            await backend.infer("scan_cnn", {"image": np.zeros((1, 1, 64, 64), np.float32)})
        assert info.value.reason == "inference_invalid_argument"
        assert await backend.is_ready("scan_cnn") and not await backend.is_ready("no_such_model")
        value = metrics.registry.get_sample_value
        assert value("medstream_inference_seconds_count", {"model": "scan_cnn"}) == 1
        assert value("medstream_inflight_requests", {"model": "scan_cnn"}) == 0
    finally:
        await backend.stop()


async def test_mismatched_model_spec_fails_start(settings: Settings) -> None:
    wrong = ModelSpec("scan_cnn", (TensorSpec("image", "FP32", (3, 224, 224)),),
                      (TensorSpec("probabilities", "FP32", (-1,)),))
    backend = TritonBackend(settings.triton_grpc_url, timeout_s=10, metrics=Metrics.create())
    with pytest.raises(ConfigurationError, match=r"input 'image' is FP32 \[1, 128, 128\]"):
        await backend.start([wrong])


async def test_unreachable_server_is_retryable() -> None:
    backend = TritonBackend(f"127.0.0.1:{free_port()}", timeout_s=2, metrics=Metrics.create())
    try:
        with pytest.raises(RetryableInference) as info:
            await backend.infer("scan_cnn", {"image": np.zeros((1, 1, 128, 128), np.float32)})
        assert info.value.code in {"UNAVAILABLE", "DEADLINE_EXCEEDED"}
        assert not await backend.is_ready("scan_cnn")
    finally:
        await backend.stop()
