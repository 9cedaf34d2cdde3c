"""Keras 3 on the torch backend (no TensorFlow) and the ONNX export of its models: load a
checkpoint, preprocess an image as the packages did, run it, export it, run the export.

The export uses torch's TorchScript ONNX exporter (what `model.export(format="onnx")` uses on the
torch backend, which cannot give a dynamic batch axis there): a wrapper appends the softmax (the
heads output logits), the batch axis is dynamic, and Keras' "same"-padding lengths are made
static (the spatial size is fixed; only the batch varies). The ONNX is then normalised (doc
strings and metadata dropped, deterministic protobuf serialisation), so two exports of the same
checkpoint give the same bytes.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from worker.preprocess.rgb import RgbFormat

INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"
OPSET = 17


def keras_backend():
    """Import keras on the torch backend (no TensorFlow); refuses another backend."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras

    if keras.backend.backend() != "torch":
        raise RuntimeError(f"keras runs on {keras.backend.backend()!r}; set KERAS_BACKEND=torch")
    return keras


def reference_input(path: Path, fmt: RgbFormat) -> np.ndarray:
    """The package's own preprocessing (ImageDataGenerator.flow_from_dataframe defaults):
    load_img RGB, nearest resize to size x size, xception.preprocess_input -> float32 HWC."""
    keras = keras_backend()
    image = keras.utils.load_img(path, color_mode="rgb", target_size=(fmt.size, fmt.size),
                                 interpolation="nearest")
    x = keras.applications.xception.preprocess_input(keras.utils.img_to_array(image))
    return np.asarray(x, dtype=np.float32)


def load_keras(path: Path):
    """The Keras model (torch backend, inference mode)."""
    return keras_backend().saving.load_model(path, compile=False)


def keras_probabilities(model, x: np.ndarray, batch: int = 8) -> np.ndarray:
    """softmax(model(x)) with Keras/torch, in batches."""
    import torch

    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            logits = model(torch.as_tensor(x[i:i + batch]), training=False)
            out.append(torch.softmax(logits, dim=-1).cpu().numpy())
    return np.concatenate(out).astype(np.float32)


@contextlib.contextmanager
def _static_same_padding() -> Iterator[None]:
    """Make Keras' torch "same"-padding lengths Python ints while tracing.

    The tracer turns `inputs.shape` into tensors, and `F.pad(mode="replicate")` then refuses the
    traced lengths. Spatial sizes are fixed by the input contract, so constants are exact.
    """
    from keras.src.backend.torch import nn as keras_nn

    original = keras_nn._compute_padding_length

    def static(input_length, *args, **kwargs):
        return original(int(input_length), *args, **kwargs)

    keras_nn._compute_padding_length = static
    try:
        yield
    finally:
        keras_nn._compute_padding_length = original


def normalise_onnx(data: bytes) -> bytes:
    """Drop doc strings and metadata (paths, versions) and serialise deterministically."""
    import onnx

    model = onnx.load_from_string(data)
    model.doc_string = ""
    model.graph.doc_string = ""
    del model.metadata_props[:]
    for node in model.graph.node:
        node.doc_string = ""
    for value in (*model.graph.input, *model.graph.output, *model.graph.value_info):
        value.doc_string = ""
    onnx.checker.check_model(model)
    return model.SerializeToString(deterministic=True)


def export_onnx(model, fmt: RgbFormat) -> bytes:
    """ONNX bytes of softmax(model(image)) with a dynamic batch axis (normalised)."""
    import torch

    class WithSoftmax(torch.nn.Module):
        def __init__(self, inner) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, image: torch.Tensor) -> torch.Tensor:
            return torch.softmax(self.inner(image, training=False), dim=-1)

    wrapper = WithSoftmax(model).eval()
    example = torch.zeros((2, *fmt.dims))
    buffer = io.BytesIO()
    with _static_same_padding(), warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about the constant padding lengths
        torch.onnx.export(
            wrapper, (example,), buffer, dynamo=False, opset_version=OPSET,
            input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
        )
    return normalise_onnx(buffer.getvalue())


def onnx_session(data: bytes | Path, threads: int = 2):
    """An onnxruntime CPU session for ONNX bytes or a file."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    source = str(data) if isinstance(data, Path) else data
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def onnx_probabilities(session, x: np.ndarray, batch: int = 8) -> np.ndarray:
    """The exported model's probabilities for `x` (NHWC float32), in batches."""
    return np.concatenate([session.run([OUTPUT_NAME], {INPUT_NAME: x[i:i + batch]})[0]
                           for i in range(0, len(x), batch)])
