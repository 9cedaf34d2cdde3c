"""Ceilings: what the model alone can do, and what preprocessing alone costs.

- ONNX Runtime in-process on the repository's model file (no serving overhead).
- Triton over gRPC with the asyncio client: several requests in flight at each batch size,
  the best one is the ceiling a streaming worker can hope to reach through Triton.
- Decode + preprocess of one message on one core (the CPU work the worker adds per message).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import tritonclient.grpc.aio as grpcclient

_TIMEOUT_S = 30.0
_MIN_REQUESTS = 8  # per loop: a slow model (~50 ms an image) gets more than a few in `duration_s`


def _batch(sample: np.ndarray, size: int) -> np.ndarray:
    return np.ascontiguousarray(np.repeat(sample[None], size, axis=0))


def preprocess_rate(decode: Callable[[bytes], object], value: bytes, duration_s: float) -> dict:
    """Median milliseconds to decode + preprocess one message, and the implied messages/s/core."""
    decode(value)  # warm caches
    times: list[float] = []
    end = time.perf_counter() + duration_s
    while time.perf_counter() < end or len(times) < 5:
        t0 = time.perf_counter()
        decode(value)
        times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    return {"median_ms": median * 1e3, "msg_per_s_per_core": 1.0 / median, "samples": len(times)}


def ort_ceiling(model: Path | bytes, input_name: str, sample: np.ndarray,
                batch_sizes: tuple[int, ...], duration_s: float) -> dict:
    """In-process ONNX Runtime (a model file or ONNX bytes): items/s per batch size, the best."""
    source = model if isinstance(model, bytes) else str(model)
    session = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    per_batch: dict[int, float] = {}
    latency_ms: dict[int, float] = {}
    for size in batch_sizes:
        feed = {input_name: _batch(sample, size)}
        session.run(None, feed)
        times = []
        end = time.perf_counter() + duration_s
        while time.perf_counter() < end or len(times) < 3:
            t0 = time.perf_counter()
            session.run(None, feed)
            times.append(time.perf_counter() - t0)
        latency_ms[size] = statistics.median(times) * 1e3
        per_batch[size] = size / statistics.median(times)
    best = max(per_batch, key=per_batch.__getitem__)
    return {"items_per_s": per_batch[best], "best_batch": best,
            "items_per_s_by_batch": per_batch, "latency_ms_by_batch": latency_ms}


async def _triton_run(client: grpcclient.InferenceServerClient, model: str, input_name: str,
                      data: np.ndarray, concurrency: int, duration_s: float) -> tuple[float, float]:
    """Closed loop with `concurrency` requests in flight; returns (items/s, median latency ms)."""
    dtype = "FP32"
    latencies: list[float] = []
    done = 0

    async def loop(stop_at: float) -> None:
        nonlocal done
        sent = 0
        while time.perf_counter() < stop_at or sent < _MIN_REQUESTS:
            sent += 1
            inp = grpcclient.InferInput(input_name, list(data.shape), dtype)
            inp.set_data_from_numpy(data)
            t0 = time.perf_counter()
            await client.infer(model, [inp], client_timeout=_TIMEOUT_S)
            latencies.append(time.perf_counter() - t0)
            done += data.shape[0]

    await asyncio.gather(*(loop(time.perf_counter() + 0.3) for _ in range(concurrency)))  # warm
    latencies.clear()
    done = 0
    t0 = time.perf_counter()
    await asyncio.gather(*(loop(t0 + duration_s) for _ in range(concurrency)))
    elapsed = time.perf_counter() - t0
    return done / elapsed, statistics.median(latencies) * 1e3


async def triton_ceiling(grpc_url: str, model: str, input_name: str, sample: np.ndarray,
                         batch_sizes: tuple[int, ...], concurrencies: tuple[int, ...],
                         duration_s: float) -> dict:
    """Triton gRPC: items/s for every (batch, concurrency), the best, and batch-1 latency.

    Batch sizes above the model's max_batch_size (Triton refuses them) are left out."""
    client = grpcclient.InferenceServerClient(grpc_url)
    try:
        config = await client.get_model_config(model, as_json=True)
        limit = int(config["config"]["max_batch_size"])
        grid: dict[str, dict] = {}
        for size in [b for b in batch_sizes if b <= limit] or [limit]:
            data = _batch(sample, size)
            for conc in concurrencies:
                rate, lat = await _triton_run(client, model, input_name, data, conc, duration_s)
                grid[f"b{size}xc{conc}"] = {"batch": size, "concurrency": conc,
                                            "items_per_s": rate, "median_ms": lat}
        best = max(grid.values(), key=lambda row: row["items_per_s"])
        bs1 = [row for row in grid.values() if row["batch"] == 1]
        return {"items_per_s": best["items_per_s"], "best_batch": best["batch"],
                "best_concurrency": best["concurrency"],
                "batch1_median_ms": min(row["median_ms"] for row in bs1) if bs1 else None,
                "grid": grid}
    finally:
        await client.close()
