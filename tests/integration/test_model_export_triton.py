"""The real local Triton serves the exported models exactly like the in-process torch models."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
import torch
import tritonclient.grpc as grpcclient
from pydicom.data import get_testdata_file

from medstream_training import REPOSITORY, SCAN_MODEL, VITALS_MODEL
from medstream_training.build import CHECKPOINTS, load_scan, load_vitals
from medstream_training.export import sha256_file
from medstream_training.vitals_data import make_windows, real_heart_rate
from worker.preprocess.scan import dicom_to_tensor

pytestmark = pytest.mark.integration

ATOL = 1e-4
# Real scans of several modalities and encodings (pydicom + pydicom-data, the `train` extra).
DICOM_FILES = (
    "CT_small.dcm", "MR_small.dcm", "RG1_UNCR.dcm", "RG3_UNCR.dcm", "MR2_UNCR.dcm",
    "US1_UNCR.dcm", "emri_small.dcm", "SC_rgb.dcm", "693_UNCR.dcm", "JPEG2000.dcm",
    "MR_small_RLE.dcm",
)


@pytest.fixture(scope="module")
def client(settings):
    triton = grpcclient.InferenceServerClient(settings.triton_grpc_url)
    yield triton
    triton.close()


def infer(client, model: str, name: str, x: np.ndarray, outputs: list[str]) -> list[np.ndarray]:
    inp = grpcclient.InferInput(name, list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    result = client.infer(model, [inp], client_timeout=60)
    return [result.as_numpy(o) for o in outputs]


def served_parameters(client, model: str) -> dict[str, str]:
    config = client.get_model_config(model, as_json=True)["config"]
    return {k: v["string_value"] for k, v in config.get("parameters", {}).items()}


def test_scan_cnn_served_matches_torch(client) -> None:
    model, labels, version = load_scan(CHECKPOINTS / f"{SCAN_MODEL}.pt")
    params = served_parameters(client, SCAN_MODEL)
    assert params["model_sha256"] == sha256_file(REPOSITORY / SCAN_MODEL / "1" / "model.onnx")
    assert params["labels"].split(",") == labels and params["version"] == version
    batch = np.stack([dicom_to_tensor(pydicom.dcmread(get_testdata_file(n))) for n in DICOM_FILES])
    (served,) = infer(client, SCAN_MODEL, "image", batch, ["probabilities"])
    with torch.no_grad():
        reference = model(torch.from_numpy(batch)).numpy()
    assert served.shape == (len(batch), len(labels))
    np.testing.assert_allclose(served, reference, atol=ATOL)
    assert np.array_equal(served.argmax(1), reference.argmax(1))


def test_vitals_lstm_served_matches_torch(client) -> None:
    model, version = load_vitals(CHECKPOINTS / f"{VITALS_MODEL}.pt")
    params = served_parameters(client, VITALS_MODEL)
    assert params["model_sha256"] == sha256_file(REPOSITORY / VITALS_MODEL / "1" / "model.onnx")
    assert params["version"] == version
    windows = make_windows(2, real_heart_rate(), seed=123).windows[:48]
    risk, forecast = infer(client, VITALS_MODEL, "window", windows, ["risk", "forecast"])
    with torch.no_grad():
        ref_risk, ref_forecast = model(torch.from_numpy(windows))
    np.testing.assert_allclose(risk, ref_risk.numpy(), atol=ATOL)
    np.testing.assert_allclose(forecast, ref_forecast.numpy(), atol=1e-3)  # physical units
    assert ((risk >= 0) & (risk <= 1)).all()
