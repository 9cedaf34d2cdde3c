"""Export trained torch models to the Triton repository: <model>/1/model.onnx + config.pbtxt.

The ONNX graphs have a dynamic batch axis; config.pbtxt carries max_batch_size, dynamic
batching and the metadata the worker reads through get_model_config: `labels` (scan_cnn),
`model_sha256` (of model.onnx) and `version`.
"""

from __future__ import annotations

import hashlib
import logging
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from medstream_training import SCAN_MODEL, VITALS_MODEL
from medstream_training.nets import ScanCNN, VitalsLSTM
from worker.contracts import CHANNELS
from worker.preprocess.scan import IMAGE_SIZE
from worker.preprocess.vitals import WINDOW_LEN

log = logging.getLogger(__name__)

OPSET = 17
SCAN_MAX_BATCH = 32
VITALS_MAX_BATCH = 64
QUEUE_DELAY_US = 2000
# One onnxruntime thread per execution: faster on small CPUs with several requests in flight
# (docs/benchmarks.md). The name is the one Triton's onnxruntime backend reads (NGC image);
# the local shim in deploy/triton-backends reads it too.
ORT_PARAMETERS = {"intra_op_thread_count": "1"}
SCAN_DECLARATION = {"modalities": "CR,DX", "body_parts": "CHEST", "input_format": "gray128",
                    "intended_use": "test fixture, not a clinical model"}
"""What scan_cnn declares to routing (worker.routing.declarations); `models train` takes its own."""


@dataclass(frozen=True)
class TensorSpec:
    """One named tensor of a Triton model, dims without the batch axis."""

    name: str
    dims: tuple[int, ...]


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def render_config(
    name: str,
    max_batch_size: int,
    inputs: list[TensorSpec],
    outputs: list[TensorSpec],
    parameters: dict[str, str],
) -> str:
    """config.pbtxt text for an onnxruntime model with dynamic batching (no instance_group)."""

    def tensors(kind: str, specs: list[TensorSpec]) -> str:
        body = ",\n".join(
            f'  {{\n    name: "{s.name}"\n    data_type: TYPE_FP32\n'
            f"    dims: [ {', '.join(str(d) for d in s.dims)} ]\n  }}"
            for s in specs
        )
        return f"{kind} [\n{body}\n]\n"

    params = "".join(
        f'parameters {{\n  key: "{k}"\n  value {{ string_value: "{v}" }}\n}}\n'
        for k, v in parameters.items()
    )
    return (
        f'name: "{name}"\nbackend: "onnxruntime"\nmax_batch_size: {max_batch_size}\n'
        + tensors("input", inputs)
        + tensors("output", outputs)
        + f"dynamic_batching {{\n  max_queue_delay_microseconds: {QUEUE_DELAY_US}\n"
        + "  priority_levels: 2\n  default_priority_level: 2\n}\n"  # STAT lanes: docs/lanes.md
        + params
    )


def _export_onnx(model: torch.nn.Module, example: torch.Tensor, path: Path,
                 input_name: str, output_names: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    axes = {n: {0: "batch"} for n in [input_name, *output_names]}
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # legacy-exporter deprecation and LSTM batch notices
        torch.onnx.export(
            model, (example,), str(path), dynamo=False, opset_version=OPSET,
            input_names=[input_name], output_names=output_names, dynamic_axes=axes,
        )


def read_config_parameters(config: Path) -> dict[str, str]:
    """The string parameters of a config.pbtxt written here."""
    pattern = re.compile(r'key: "([^"]+)"\s*value \{ string_value: "([^"]*)" \}')
    return dict(pattern.findall(config.read_text()))


def _write(model_dir: Path, name: str, max_batch: int, inputs: list[TensorSpec],
           outputs: list[TensorSpec], params: dict[str, str],
           declaration: dict[str, str] | None = None) -> str:
    onnx_path = model_dir / "1" / "model.onnx"
    digest = sha256_file(onnx_path)
    config = render_config(name, max_batch, inputs, outputs,
                           {**params, "model_sha256": digest, **ORT_PARAMETERS, **(declaration or {})})
    (model_dir / "config.pbtxt").write_text(config)
    log.info("exported %s (%d bytes, sha256 %s)", onnx_path, onnx_path.stat().st_size, digest[:12])
    return digest


def export_scan(model: ScanCNN, labels: list[str], repository: Path, version: str,
                name: str = SCAN_MODEL, declaration: dict[str, str] | None = None) -> str:
    """Write <name>/1/model.onnx and config.pbtxt with the routing declaration (default: the
    scan_cnn fixture's); returns the model sha256."""
    declaration = SCAN_DECLARATION if declaration is None else declaration
    if any("," in label or '"' in label for label in labels) or any('"' in v for v in declaration.values()):
        raise ValueError("class labels must not contain commas or quotes, declarations no quotes")
    model_dir = repository / name
    example = torch.zeros(2, 1, IMAGE_SIZE, IMAGE_SIZE)
    _export_onnx(model, example, model_dir / "1" / "model.onnx", "image", ["probabilities"])
    return _write(
        model_dir, name, SCAN_MAX_BATCH,
        [TensorSpec("image", (1, IMAGE_SIZE, IMAGE_SIZE))],
        [TensorSpec("probabilities", (len(labels),))],
        {"labels": ",".join(labels), "version": version}, declaration,
    )


def export_vitals(model: VitalsLSTM, repository: Path, version: str) -> str:
    """Write vitals_lstm/1/model.onnx and config.pbtxt; returns the model sha256."""
    model_dir = repository / VITALS_MODEL
    example = torch.zeros(2, WINDOW_LEN, 2 * len(CHANNELS))
    _export_onnx(model, example, model_dir / "1" / "model.onnx", "window", ["risk", "forecast"])
    return _write(
        model_dir, VITALS_MODEL, VITALS_MAX_BATCH,
        [TensorSpec("window", (WINDOW_LEN, 2 * len(CHANNELS)))],
        [TensorSpec("risk", (1,)), TensorSpec("forecast", (len(CHANNELS),))],
        {"channels": ",".join(CHANNELS), "version": version},
    )
