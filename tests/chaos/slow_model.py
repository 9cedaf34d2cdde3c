"""Test-only python-backend model: the real ONNX model, answered after a random delay.

Copied into `<model>/1/model.py` of the chaos model repository (see conftest.slow_variant).
Config parameters `delay_min_ms` / `delay_max_ms` bound the delay of each execute() call,
so requests land near (and sometimes past) the worker's Triton timeout.
"""

from __future__ import annotations

import json
import os
import random
import time

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    """Sleep, then run the dynamic batch through onnxruntime and split the outputs back."""

    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        self.delay = (int(params["delay_min_ms"]) / 1000, int(params["delay_max_ms"]) / 1000)
        path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.inputs = [i["name"] for i in config["input"]]
        self.outputs = [(o["name"], pb_utils.triton_string_to_numpy(o["data_type"]))
                        for o in config["output"]]

    def execute(self, requests: list) -> list:
        time.sleep(random.uniform(*self.delay))
        feeds = {n: [pb_utils.get_input_tensor_by_name(r, n).as_numpy() for r in requests]
                 for n in self.inputs}
        sizes = [part.shape[0] for part in feeds[self.inputs[0]]]
        results = self.session.run([n for n, _ in self.outputs],
                                   {n: np.concatenate(p) for n, p in feeds.items()})
        responses, start = [], 0
        for size in sizes:
            responses.append(pb_utils.InferenceResponse(output_tensors=[
                pb_utils.Tensor(n, np.ascontiguousarray(r[start:start + size], dtype=t))
                for (n, t), r in zip(self.outputs, results)]))
            start += size
        return responses
