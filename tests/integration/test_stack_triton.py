"""The local Triton server: both models over gRPC and HTTP with a batch, configs and metrics."""

from __future__ import annotations

import urllib.request

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from worker.settings import Settings

pytestmark = pytest.mark.integration

RNG = np.random.default_rng(7)


def _labels(settings: Settings) -> list[str]:
    client = grpcclient.InferenceServerClient(settings.triton_grpc_url)
    config = client.get_model_config(settings.scan.model, as_json=True)["config"]
    return config["parameters"]["labels"]["string_value"].split(",")


def _check_scan(probabilities: np.ndarray, batch: int, classes: int) -> None:
    assert probabilities.dtype == np.float32 and probabilities.shape == (batch, classes)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-4)


def _check_vitals(risk: np.ndarray, forecast: np.ndarray, batch: int) -> None:
    assert risk.dtype == np.float32 and risk.shape == (batch, 1)
    assert forecast.dtype == np.float32 and forecast.shape == (batch, 6)
    assert np.all((risk >= 0) & (risk <= 1)) and np.all(np.isfinite(forecast))


@pytest.mark.parametrize("client_mod", [grpcclient, httpclient], ids=["grpc", "http"])
def test_scan_cnn_batch(settings: Settings, client_mod) -> None:
    url = settings.triton_grpc_url if client_mod is grpcclient else settings.triton_http_url
    client = client_mod.InferenceServerClient(url)
    images = RNG.random((6, 1, 128, 128), dtype=np.float32)
    tensor = client_mod.InferInput("image", list(images.shape), "FP32")
    tensor.set_data_from_numpy(images)
    result = client.infer(settings.scan.model, [tensor])
    _check_scan(result.as_numpy("probabilities"), 6, len(_labels(settings)))


@pytest.mark.parametrize("client_mod", [grpcclient, httpclient], ids=["grpc", "http"])
def test_vitals_lstm_batch(settings: Settings, client_mod) -> None:
    url = settings.triton_grpc_url if client_mod is grpcclient else settings.triton_http_url
    client = client_mod.InferenceServerClient(url)
    windows = np.zeros((5, 60, 12), dtype=np.float32)
    windows[:, :, :6] = RNG.normal(size=(5, 60, 6))
    tensor = client_mod.InferInput("window", list(windows.shape), "FP32")
    tensor.set_data_from_numpy(windows)
    result = client.infer(settings.vitals.model, [tensor])
    _check_vitals(result.as_numpy("risk"), result.as_numpy("forecast"), 5)


def test_concurrent_requests_match_one_batched_request(settings: Settings) -> None:
    """The backend shim joins queued requests into one run; each caller gets its own rows."""
    client = httpclient.InferenceServerClient(settings.triton_http_url, concurrency=8)
    images = RNG.random((8, 1, 128, 128), dtype=np.float32)

    def request(rows: np.ndarray) -> list[httpclient.InferInput]:
        tensor = httpclient.InferInput("image", list(rows.shape), "FP32")
        tensor.set_data_from_numpy(rows)
        return [tensor]

    together = client.infer(settings.scan.model, request(images)).as_numpy("probabilities")
    pending = [client.async_infer(settings.scan.model, request(images[i:i + 1])) for i in range(8)]
    singles = np.concatenate([p.get_result().as_numpy("probabilities") for p in pending])
    client.close()
    np.testing.assert_allclose(singles, together, rtol=1e-4, atol=1e-6)


def test_model_configs_expose_labels_and_version(settings: Settings) -> None:
    client = grpcclient.InferenceServerClient(settings.triton_grpc_url)
    for model in (settings.scan.model, settings.vitals.model):
        config = client.get_model_config(model, as_json=True)["config"]
        assert config["parameters"]["model_sha256"]["string_value"]
        assert int(config["max_batch_size"]) > 0
    assert len(_labels(settings)) >= 2


def test_triton_metrics_endpoint_counts_inferences(settings: Settings) -> None:
    with urllib.request.urlopen(f"http://{settings.triton_metrics_url}/metrics", timeout=10) as r:
        text = r.read().decode()
    assert f'nv_inference_count{{model="{settings.scan.model}"' in text
