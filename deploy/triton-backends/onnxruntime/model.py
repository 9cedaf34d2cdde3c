"""Local stand-in for Triton's onnxruntime backend, run by the python backend.

Triton loads `backends/onnxruntime/model.py` for a model with `backend: "onnxruntime"` when
`libtriton_onnxruntime.so` is absent (the pip wheel has none), so the production model
repository (`<model>/config.pbtxt`, `<model>/<version>/model.onnx`) loads unchanged.

All requests of one `execute()` call (the dynamic batcher's batch) are joined into one
onnxruntime run and the outputs split back per request. Optional config parameters:
`intra_op_thread_count`, `inter_op_thread_count` (0 = onnxruntime's default);
`session.intra_op.allow_spinning`, `session.inter_op.allow_spinning` (onnxruntime's session
config entries: "1", its default, has idle pool threads spin for work; "0" has them block).
The shim turns spinning off unless the config says "1": docs/benchmarks.md, "ONNX Runtime
thread spinning", has the measurements.
"""

from __future__ import annotations

import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils

SPINNING = ("session.intra_op.allow_spinning", "session.inter_op.allow_spinning")
SPINNING_DEFAULT = "0"
"""Each SPINNING entry when config.pbtxt does not set it: the threads block while they wait."""


def _parameter(config: dict, key: str) -> str | None:
    value = config.get("parameters", {}).get(key, {}).get("string_value")
    return value if value not in (None, "") else None


def _int_parameter(config: dict, key: str, default: int) -> int:
    value = _parameter(config, key)
    return int(value) if value is not None else default


def session_options(config: dict) -> ort.SessionOptions:
    """onnxruntime session options from the model's config (its `parameters`)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = _int_parameter(config, "intra_op_thread_count", 0)
    options.inter_op_num_threads = _int_parameter(config, "inter_op_thread_count", 0)
    for key in SPINNING:
        value = _parameter(config, key) or SPINNING_DEFAULT
        if value not in ("0", "1"):
            raise ValueError(f'{key} must be "0" or "1", not {value!r}')
        options.add_session_config_entry(key, value)
    return options


class TritonPythonModel:
    """Serve `<version>/model.onnx` with onnxruntime, one run per dynamic batch."""

    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        filename = config.get("default_model_filename") or "model.onnx"
        path = os.path.join(args["model_repository"], args["model_version"], filename)
        self.session = ort.InferenceSession(path, session_options(config),
                                            providers=["CPUExecutionProvider"])
        self.inputs = [i["name"] for i in config["input"]]
        self.outputs = [
            (o["name"], pb_utils.triton_string_to_numpy(o["data_type"])) for o in config["output"]
        ]
        onnx_inputs = {i.name for i in self.session.get_inputs()}
        onnx_outputs = {o.name for o in self.session.get_outputs()}
        missing = (set(self.inputs) - onnx_inputs) | ({n for n, _ in self.outputs} - onnx_outputs)
        if missing:
            raise pb_utils.TritonModelException(
                f"{path}: config.pbtxt names tensors the ONNX graph lacks: {sorted(missing)} "
                f"(graph inputs {sorted(onnx_inputs)}, outputs {sorted(onnx_outputs)})"
            )

    def execute(self, requests: list) -> list:
        """Join the requests along the batch axis, run once, split the outputs back."""
        try:
            feeds = {name: [] for name in self.inputs}
            sizes = []
            for request in requests:
                for name in self.inputs:
                    feeds[name].append(pb_utils.get_input_tensor_by_name(request, name).as_numpy())
                sizes.append(feeds[self.inputs[0]][-1].shape[0])
            joined = {name: np.concatenate(parts, axis=0) for name, parts in feeds.items()}
            results = self.session.run([n for n, _ in self.outputs], joined)
        except Exception as exc:  # noqa: BLE001 - every request gets the error back
            error = pb_utils.TritonError(f"onnxruntime: {exc}")
            return [pb_utils.InferenceResponse(output_tensors=[], error=error) for _ in requests]
        responses = []
        start = 0
        for size in sizes:
            tensors = [
                pb_utils.Tensor(name, np.ascontiguousarray(result[start:start + size], dtype=dtype))
                for (name, dtype), result in zip(self.outputs, results)
            ]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            start += size
        return responses

    def finalize(self) -> None:
        self.session = None
