"""`medstream top`'s figures: one Frame per pair of scrapes (worker and Triton), per input kind
and per model - rates from successive scrapes, percentiles from histogram buckets
(Prometheus' `histogram_quantile` rule). Pure functions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from medstream_tools.top.promstats import (
    Key,
    Snapshot,
    buckets_by,
    histogram_quantile,
    increase,
    sum_by,
)

P = "medstream_"
Samples = Mapping[Key, float]


def _ratio(num: float | None, den: float | None) -> float | None:
    return num / den if num is not None and den else None


def _per_request_ms(us: dict[str, float], requests: dict[str, float], model: str) -> float | None:
    """Mean milliseconds per request from Triton's cumulative microsecond counters."""
    mean_us = _ratio(us.get(model), requests.get(model))
    return None if mean_us is None else mean_us / 1000.0


@dataclass(frozen=True)
class KindRow:
    """Throughput and end-to-end latency of one input kind."""

    kind: str
    consumed: float
    predictions: float
    deadletters: float
    per_s: tuple[float | None, float | None, float | None]
    e2e: tuple[float | None, float | None, float | None]


@dataclass(frozen=True)
class ModelRow:
    """Batching, inference time, errors and Triton's queue/compute split of one model."""

    model: str
    batch_mean: float | None
    batch_p95: float | None
    infer_p95: float | None
    inflight: float
    errors: float
    circuit_open: bool
    triton_queue_ms: float | None
    triton_compute_ms: float | None
    triton_batch: float | None


@dataclass(frozen=True)
class Frame:
    """Everything one screen shows. Rates and windowed figures are None on a first scrape."""

    worker_error: str | None
    triton_error: str | None
    ready: float | None
    window_s: float | None
    kinds: list[KindRow]
    models: list[ModelRow]
    deadletters: dict[str, float]
    errors: dict[str, float]
    lag: dict[str, float]


NV_COUNTERS = (
    "request_success",
    "queue_duration_us",
    "compute_infer_duration_us",
    "count",
    "exec_count",
)


def kind_rows(w: Samples, inc: Samples, window: float | None) -> list[KindRow]:
    """Totals, rates and end-to-end percentiles per input kind."""
    names = ("messages_consumed", "predictions", "deadletters")
    totals = [sum_by(w, P + n, "kind") for n in names]
    done = [sum_by(inc, P + n, "kind") for n in names]
    e2e = buckets_by(inc, P + "end_to_end_seconds", "kind")
    kinds = set(e2e).union(*totals)
    return [
        KindRow(
            kind=k,
            consumed=totals[0].get(k, 0.0),
            predictions=totals[1].get(k, 0.0),
            deadletters=totals[2].get(k, 0.0),
            per_s=tuple(d.get(k, 0.0) / window if window else None for d in done),  # type: ignore[arg-type]
            e2e=tuple(histogram_quantile(q, e2e.get(k, [])) for q in (0.5, 0.95, 0.99)),  # type: ignore[arg-type]
        )
        for k in sorted(kinds)
    ]


def model_rows(w: Samples, inc: Samples, triton_inc: Samples) -> list[ModelRow]:
    """Batching, inference time, errors, breaker state and Triton's split per model."""
    batch = buckets_by(inc, P + "batch_size", "model")
    batch_sum = sum_by(inc, P + "batch_size_sum", "model")
    batch_n = sum_by(inc, P + "batch_size_count", "model")
    infer = buckets_by(inc, P + "inference_seconds", "model")
    inflight = sum_by(w, P + "inflight_requests", "model")
    circuit = sum_by(w, P + "circuit_open", "model")
    errors = sum_by(w, P + "inference_errors", "model")
    nv = {n: sum_by(triton_inc, "nv_inference_" + n, "model") for n in NV_COUNTERS}
    ok = nv["request_success"]
    models = set(batch).union(infer, inflight, circuit, errors, ok)
    return [
        ModelRow(
            model=m,
            batch_mean=_ratio(batch_sum.get(m), batch_n.get(m)),
            batch_p95=histogram_quantile(0.95, batch.get(m, [])),
            infer_p95=histogram_quantile(0.95, infer.get(m, [])),
            inflight=inflight.get(m, 0.0),
            errors=errors.get(m, 0.0),
            circuit_open=circuit.get(m, 0.0) > 0,
            triton_queue_ms=_per_request_ms(nv["queue_duration_us"], ok, m),
            triton_compute_ms=_per_request_ms(nv["compute_infer_duration_us"], ok, m),
            triton_batch=_ratio(nv["count"].get(m), nv["exec_count"].get(m)),
        )
        for m in sorted(models)
    ]


def compute_frame(
    prev_w: Snapshot | None, cur_w: Snapshot, prev_t: Snapshot | None, cur_t: Snapshot
) -> Frame:
    """Aggregate two successive worker and Triton scrapes into the figures of one frame.

    Counters, gauges and the breaker show current values; rates, percentiles and Triton's
    per-request times cover the interval between the scrapes (since start without `prev`).
    """
    w, inc = cur_w.samples, increase(prev_w, cur_w)
    window = cur_w.at - prev_w.at if prev_w is not None and prev_w.error is None else None
    return Frame(
        worker_error=cur_w.error,
        triton_error=cur_t.error,
        ready=w.get((P + "ready", ())),
        window_s=window,
        kinds=kind_rows(w, inc, window),
        models=model_rows(w, inc, increase(prev_t, cur_t)),
        deadletters=sum_by(w, P + "deadletters", "kind", "reason"),
        errors=sum_by(w, P + "inference_errors", "model", "code"),
        lag=sum_by(w, P + "consumer_lag", "topic"),
    )

