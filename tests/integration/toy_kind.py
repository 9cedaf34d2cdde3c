"""A third input kind, `echo`, declared the way docs/worker.md says to add one.

Events are JSON `{"event_id": "...", "x": [4 numbers]}`; the model (a one-node ONNX graph
built here, loaded into the running Triton by the test) returns their sum. `ToySettings` adds
the kind's settings block (`MEDSTREAM_ECHO__TOPIC`, `MEDSTREAM_ECHO__MODEL`, ...). Run as a
script, this is a worker serving the registry's kinds plus `echo`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import numpy as np
from onnx import TensorProto, helper

from worker.contracts import InputRecord, Prediction
from worker.contracts.fields import json_object
from worker.errors import DeadLetterReason, PoisonMessage
from worker.inference.protocol import ModelInfo, ModelSpec, TensorSpec
from worker.kinds import KINDS, KindSpec
from worker.pipeline import Kind
from worker.postprocess import kafka_time, latency_ms
from worker.run import serve
from worker.settings import KindSettings, Settings

WIDTH = 4


class ToySettings(Settings):
    """The worker's settings plus the `echo` block."""

    echo: KindSettings = KindSettings(topic="echo", model="echo_sum", max_batch=8,
                                      within_s=0.02, max_bytes=4096)


def echo_model_spec(name: str) -> ModelSpec:
    """x: [4] float32 in, sum: [1] out."""
    return ModelSpec(name, inputs=(TensorSpec("x", "FP32", (WIDTH,)),),
                     outputs=(TensorSpec("sum", "FP32", (1,)),))


def prepare_echo(value: bytes) -> tuple[str, np.ndarray]:
    """Event id and the 4-vector; PoisonMessage for anything else."""
    obj = json_object(value)
    event_id, x = obj.get("event_id"), obj.get("x")
    if not isinstance(event_id, str) or not event_id:
        raise PoisonMessage(DeadLetterReason.SCHEMA, "event_id must be a non-empty string")
    if not (isinstance(x, list) and len(x) == WIDTH
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in x)):
        raise PoisonMessage(DeadLetterReason.SHAPE, f"x must be a list of {WIDTH} numbers")
    return event_id, np.asarray(x, np.float32)


def echo_prediction(event_id: str, outputs: Mapping[str, np.ndarray], record: InputRecord,
                    model: ModelInfo, produced_at: datetime) -> Prediction:
    """The sum as the prediction's only output."""
    return Prediction(event_id=event_id, kind="echo", patient_id=None, model=model.name,
                      model_version=model.version, outputs={"sum": float(outputs["sum"][0])},
                      event_time=kafka_time(record), produced_at=produced_at,
                      latency_ms=latency_ms(record, produced_at))


def echo_kind(settings: Settings, models: Mapping[str, ModelInfo]) -> Kind[str]:
    """Pipeline description of echo events."""
    return Kind(name="echo", models=models, input_name="x",
                max_bytes=ECHO.settings(settings).max_bytes, prepare=prepare_echo,
                build=echo_prediction)


ECHO = KindSpec(name="echo", model_spec=echo_model_spec, build=echo_kind)


def onnx_model() -> bytes:
    """sum(x, axis=1, keepdims) as ONNX (opset 13)."""
    graph = helper.make_graph(
        [helper.make_node("ReduceSum", ["x", "axes"], ["sum"], keepdims=1)], "echo",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, WIDTH])],
        [helper.make_tensor_value_info("sum", TensorProto.FLOAT, [None, 1])],
        initializer=[helper.make_tensor("axes", TensorProto.INT64, [1], [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8  # readable by older onnxruntime releases
    return model.SerializeToString()


def triton_config(name: str) -> dict[str, Any]:
    """config.pbtxt as JSON, for Triton's load API (same backend as triton_models/)."""
    return {
        "name": name, "backend": "onnxruntime", "max_batch_size": 8,
        "input": [{"name": "x", "data_type": "TYPE_FP32", "dims": [WIDTH]}],
        "output": [{"name": "sum", "data_type": "TYPE_FP32", "dims": [1]}],
        "parameters": {"intra_op_thread_count": {"string_value": "1"}},
    }


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.exit(serve(ToySettings(), (*KINDS, ECHO)))
