"""The imported Xception models load into the real Triton (load API, inline files) and agree
with Keras and ONNX Runtime on bundled images, through the worker's DICOM preprocessing.

Builds the models first (`medstream models build`: cached when the recorded hashes match, ~2 s;
a full build is ~20 s). Loaded under per-process names and unloaded afterwards, so a running
stack's own models are untouched: when Triton already answers, the stack is not (re)started,
because `medstream local up` would also load every model found in triton_models/ into it.
Otherwise the stack is started as for every integration test (a failure, never a skip).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as httpclient
from google.protobuf import json_format, text_format
from tritonclient.grpc import model_config_pb2

from medstream_training import REPOSITORY
from medstream_training.keras_import import build_imported
from medstream_training.keras_onnx import (
    INPUT_NAME,
    OUTPUT_NAME,
    keras_probabilities,
    load_keras,
    onnx_probabilities,
    onnx_session,
    reference_input,
)
from medstream_training.keras_sources import SOURCES, bundled_images, locate
from medstream_training.xception import grey_pixels, to_dicom
from worker.preprocess.rgb import preprocessor

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

ATOL = 1e-4


def _live(url: str) -> bool:
    try:
        with httpclient.InferenceServerClient(url) as probe:
            return probe.is_server_live()
    except Exception:  # noqa: BLE001 - not running
        return False


def _load_inline(client: httpclient.InferenceServerClient, name: str, model_dir: Path) -> None:
    """Load `model_dir` (config.pbtxt + 1/model.onnx) into Triton as `name` with inline files."""
    config = text_format.Parse((model_dir / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    config.name = name
    client.load_model(name, config=json_format.MessageToJson(config, preserving_proto_field_name=True),
                      files={"file:1/model.onnx": (model_dir / "1" / "model.onnx").read_bytes()})


@pytest.fixture(scope="module")
def stack(settings):
    """Overrides conftest's `stack`: reuse a live Triton as is, else start the local stack."""
    if _live(settings.triton_http_url):
        yield None
        return
    from medstream_tools.localstack.process import StackError
    from medstream_tools.localstack.stack import StackConfig, up

    cfg = StackConfig.from_settings(settings)
    try:
        up(cfg, settings)
    except StackError as exc:
        pytest.fail(f"the local stack did not come up: {exc}", pytrace=False)
    yield cfg


@pytest.fixture(scope="module")
def client(stack, settings):
    triton = httpclient.InferenceServerClient(settings.triton_http_url, network_timeout=300)
    yield triton
    triton.close()


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_served_model_matches_keras_and_onnxruntime(client, name: str) -> None:
    source = SOURCES[name]
    result = build_imported(name, REPOSITORY)
    model_dir = REPOSITORY / name
    images = bundled_images(source)
    two = [images[0], images[-1]]  # two classes: the first and the last in name order
    assert len({im.label for im in two}) == 2
    # the worker's path: JPEG -> DICOM -> worker.preprocess.rgb; equal to the package's own input
    prep = preprocessor(source.input_format)
    x = np.stack([prep(to_dicom(grey_pixels(im.path), modality=source.modalities[0],
                                body_part=source.body_parts[0])) for im in two])
    reference = np.stack([reference_input(im.path, source.fmt) for im in two])
    np.testing.assert_array_equal(x, reference)

    served_name = f"itest_{name}_{os.getpid()}"
    _load_inline(client, served_name, model_dir)
    try:
        config = client.get_model_config(served_name)
        params = {k: v["string_value"] for k, v in config["parameters"].items()}
        assert params["model_sha256"] == result.model_sha256
        assert params["labels"].split(",") == list(source.labels)
        assert params["input_format"] == source.input_format
        assert config["max_batch_size"] == source.max_batch_size
        inp = httpclient.InferInput(INPUT_NAME, list(x.shape), "FP32")
        inp.set_data_from_numpy(x, binary_data=True)
        served = client.infer(served_name, [inp]).as_numpy(OUTPUT_NAME)
    finally:
        client.unload_model(served_name)

    onnx = onnx_probabilities(onnx_session(model_dir / "1" / "model.onnx"), x)
    keras = keras_probabilities(load_keras(locate(source)), x)
    assert served.shape == (2, len(source.labels))
    np.testing.assert_allclose(served, onnx, atol=1e-6)
    np.testing.assert_allclose(served, keras, atol=ATOL)
    # and the probabilities recorded by the build for these images
    recorded = {r["name"]: r["onnx"] for r in json.loads((model_dir / "build.json").read_text())["images"]}
    np.testing.assert_allclose(served, [recorded[im.name] for im in two], atol=ATOL)
