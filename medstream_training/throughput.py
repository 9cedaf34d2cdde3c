"""In-process (torch, onnxruntime) and via-Triton throughput of the exported models.

Figures are printed and written to the model card, never asserted: they depend on the CPU
and on whatever else shares it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Timing:
    """Median latency of one call at a batch size and the items/s it implies."""

    where: str
    batch: int
    median_ms: float

    @property
    def items_per_s(self) -> float:
        return self.batch / (self.median_ms / 1000.0)


def median_ms(fn: Callable[[], object], repeats: int, warmup: int = 3) -> float:
    """Median wall time of fn() in milliseconds."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return float(np.median(samples) * 1000.0)


def onnx_session(path: Path, threads: int) -> ort.InferenceSession:
    """A CPU onnxruntime session with a bounded thread count."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _repeats(batch: int) -> int:
    return 50 if batch == 1 else 15


def bench_local(model: torch.nn.Module, session: ort.InferenceSession,
                item_shape: tuple[int, ...], batches: tuple[int, ...]) -> list[Timing]:
    """torch and onnxruntime timings in this process for random inputs of item_shape."""
    rng = np.random.default_rng(0)
    name = session.get_inputs()[0].name
    out = []
    for batch in batches:
        x = rng.random((batch, *item_shape), dtype=np.float32)
        tx = torch.from_numpy(x)
        with torch.no_grad():
            out.append(Timing("torch in-process", batch, median_ms(lambda tx=tx: model(tx), _repeats(batch))))
        out.append(Timing("onnxruntime in-process", batch,
                          median_ms(lambda x=x: session.run(None, {name: x}), _repeats(batch))))
    return out


def bench_triton(url: str, model: str, input_name: str, item_shape: tuple[int, ...],
                 batches: tuple[int, ...]) -> list[Timing]:
    """Sequential gRPC inference timings against a running Triton (raises if unreachable)."""
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(url)
    try:
        if not client.is_model_ready(model):
            raise RuntimeError(f"model {model} is not ready on {url}")
        rng = np.random.default_rng(0)
        out = []
        for batch in batches:
            x = rng.random((batch, *item_shape), dtype=np.float32)
            inp = grpcclient.InferInput(input_name, list(x.shape), "FP32")
            inp.set_data_from_numpy(x)
            out.append(Timing("Triton gRPC", batch,
                              median_ms(lambda inp=inp: client.infer(model, [inp], client_timeout=30),
                                        _repeats(batch))))
        return out
    finally:
        client.close()


def timing_rows(model: str, timings: list[Timing]) -> list[str]:
    """Markdown table rows: model | path | batch | median ms | items/s."""
    return [f"| {model} | {t.where} | {t.batch} | {t.median_ms:.2f} | {t.items_per_s:,.0f} |" for t in timings]
