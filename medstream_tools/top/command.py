"""`medstream top`: the dashboard's key figures in a terminal, live from `/metrics`.

Polls the worker's `/metrics` and Triton's metrics port, computes rates from successive
scrapes and percentiles from histogram buckets (Prometheus' `histogram_quantile` rule), and
redraws one frame per interval. Aggregation and rendering are pure functions; `run` is the loop.
"""

from __future__ import annotations

import argparse
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from medstream_tools.top.promstats import (
    Key,
    Snapshot,
    buckets_by,
    histogram_quantile,
    increase,
    parse_metrics,
    sum_by,
)
from worker.settings import Settings

CLEAR = "\x1b[H\x1b[2J"
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


KIND_COLUMNS = (
    ("kind", -8),
    ("consumed", 10),
    ("/s", 8),
    ("predicted", 11),
    ("/s", 8),
    ("deadltr", 9),
    ("/s", 8),
    ("e2e p50", 9),
    ("p95", 8),
    ("p99", 8),
)
MODEL_COLUMNS = (
    ("model", -14),
    ("batch avg", 10),
    ("p95", 6),
    ("infer p95", 10),
    ("inflight", 9),
    ("errors", 8),
    ("circuit", 9),
    ("triton queue", 13),
    ("compute", 9),
    ("exec batch", 11),
)


def _n(value: float | None, fmt: str = "{:.1f}") -> str:
    return "-" if value is None else fmt.format(value)


def _ms(seconds: float | None) -> str:
    return _n(None if seconds is None else seconds * 1000.0, "{:.0f}ms")


def _row(cells: list[str], columns: tuple[tuple[str, int], ...]) -> str:
    """Cells padded to the column widths (negative width = left-aligned)."""
    return "".join(c.ljust(-w) if w < 0 else c.rjust(w) for c, (_, w) in zip(cells, columns))


def _pairs(values: dict[str, float], empty: str) -> str:
    return ", ".join(f"{k}={v:.0f}" for k, v in sorted(values.items())) or empty


def render(frame: Frame, worker_url: str, triton_url: str) -> str:
    """The frame as plain text (no colours), one figure per column."""
    if frame.worker_error:
        state = "DOWN: " + frame.worker_error
    else:
        state = {1.0: "READY", 0.0: "NOT READY"}.get(frame.ready, "?")  # type: ignore[arg-type]
    triton = "DOWN: " + frame.triton_error if frame.triton_error else "up"
    window = f"last {frame.window_s:.1f}s" if frame.window_s else "since start (one scrape)"
    lines = [
        f"medstream top  worker {worker_url} [{state}]  triton {triton_url} [{triton}]",
        f"rates and percentiles: {window}",
        "",
        _row([name for name, _ in KIND_COLUMNS], KIND_COLUMNS),
    ]
    for k in frame.kinds:
        c, pr, d = k.per_s
        cells = [
            k.kind,
            f"{k.consumed:.0f}",
            _n(c),
            f"{k.predictions:.0f}",
            _n(pr),
            f"{k.deadletters:.0f}",
            _n(d),
            *(_ms(q) for q in k.e2e),
        ]
        lines.append(_row(cells, KIND_COLUMNS))
    lines += ["", _row([name for name, _ in MODEL_COLUMNS], MODEL_COLUMNS)]
    for m in frame.models:
        cells = [
            m.model,
            _n(m.batch_mean),
            _n(m.batch_p95, "{:.0f}"),
            _ms(m.infer_p95),
            f"{m.inflight:.0f}",
            f"{m.errors:.0f}",
            "OPEN" if m.circuit_open else "closed",
            _n(m.triton_queue_ms, "{:.2f}ms"),
            _n(m.triton_compute_ms, "{:.2f}ms"),
            _n(m.triton_batch),
        ]
        lines.append(_row(cells, MODEL_COLUMNS))
    lines += [
        "",
        "consumer lag: " + _pairs(frame.lag, "-"),
        "dead letters: " + _pairs(frame.deadletters, "none"),
        "inference errors: " + _pairs(frame.errors, "none"),
    ]
    return "\n".join(lines) + "\n"


def scrape(url: str, timeout_s: float) -> Snapshot:
    """GET `url` and parse it; a failure becomes a Snapshot carrying the error."""
    at = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            return parse_metrics(resp.read().decode("utf-8"), at)
    except (OSError, ValueError) as exc:
        return Snapshot(at=at, error=f"{type(exc).__name__}: {exc}")


def frames(worker_url: str, triton_url: str, interval_s: float, timeout_s: float) -> Iterator[str]:
    """Rendered frames, one per interval, each comparing against the previous scrape."""
    prev_w = prev_t = None
    while True:
        cur_w, cur_t = scrape(worker_url, timeout_s), scrape(triton_url, timeout_s)
        yield render(compute_frame(prev_w, cur_w, prev_t, cur_t), worker_url, triton_url)
        prev_w, prev_t = cur_w, cur_t
        time.sleep(interval_s)


def run(args: argparse.Namespace) -> int:
    """Entry point of `medstream top`."""
    settings = Settings()
    worker_url = args.url or f"http://{settings.web_host}:{settings.web_port}/metrics"
    triton_url = args.triton_url or f"http://{settings.triton_metrics_url}/metrics"
    if args.once:
        w, t = scrape(worker_url, args.timeout), scrape(triton_url, args.timeout)
        sys.stdout.write(render(compute_frame(None, w, None, t), worker_url, triton_url))
        return 0 if w.error is None else 1
    clear = CLEAR if sys.stdout.isatty() else ""
    try:
        for text in frames(worker_url, triton_url, args.interval, args.timeout):
            sys.stdout.write(clear + text + ("" if clear else "\n"))
            sys.stdout.flush()
    except KeyboardInterrupt:
        return 0
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `top` sub-command."""
    p = subparsers.add_parser("top", help="live terminal view of the worker's and Triton's metrics")
    p.add_argument(
        "--url", help="worker metrics URL (default http://MEDSTREAM_WEB_HOST:PORT/metrics)"
    )
    p.add_argument(
        "--triton-url", help="Triton metrics URL (default from MEDSTREAM_TRITON_METRICS_URL)"
    )
    p.add_argument("--interval", type=float, default=2.0, help="seconds between frames (default 2)")
    p.add_argument(
        "--timeout", type=float, default=2.0, help="scrape timeout in seconds (default 2)"
    )
    p.add_argument(
        "--once", action="store_true", help="print one frame (totals since start) and exit"
    )
    p.set_defaults(func=run)
