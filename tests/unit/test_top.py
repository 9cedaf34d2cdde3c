"""Unit tests of `medstream top`: parsing, diffing, quantiles, frame aggregation and rendering."""

from __future__ import annotations

import math

import pytest
from prometheus_client import generate_latest

from medstream_tools.top.frame import compute_frame
from medstream_tools.top.promstats import (
    Snapshot,
    buckets_by,
    histogram_quantile,
    increase,
    parse_metrics,
    sum_by,
)
from medstream_tools.top.render import render
from worker.metrics import Metrics

TRITON_TEXT = """\
# HELP nv_inference_request_success Number of successful inference requests, all batch sizes
# TYPE nv_inference_request_success counter
nv_inference_request_success{{model="scan_cnn",version="1"}} {ok}
# HELP nv_inference_count Number of inferences performed (does not include cached requests)
# TYPE nv_inference_count counter
nv_inference_count{{model="scan_cnn",version="1"}} {count}
# HELP nv_inference_exec_count Number of model executions performed
# TYPE nv_inference_exec_count counter
nv_inference_exec_count{{model="scan_cnn",version="1"}} {execs}
# HELP nv_inference_queue_duration_us Cumulative inference queuing duration in microseconds
# TYPE nv_inference_queue_duration_us counter
nv_inference_queue_duration_us{{model="scan_cnn",version="1"}} {queue}
# HELP nv_inference_compute_infer_duration_us Cumulative compute inference duration in microseconds
# TYPE nv_inference_compute_infer_duration_us counter
nv_inference_compute_infer_duration_us{{model="scan_cnn",version="1"}} {compute}
"""


def triton(at: float, ok: int, count: int, execs: int, queue: int, compute: int) -> Snapshot:
    text = TRITON_TEXT.format(ok=ok, count=count, execs=execs, queue=queue, compute=compute)
    return parse_metrics(text, at)


def worker_snapshot(metrics: Metrics, at: float) -> Snapshot:
    return parse_metrics(generate_latest(metrics.registry).decode(), at)


@pytest.fixture
def metrics() -> Metrics:
    return Metrics.create()


def test_counters_keyed_without_total_suffix_for_worker_and_triton(metrics: Metrics) -> None:
    metrics.predictions.labels(kind="scan", model="scan_cnn").inc(3)
    snap = worker_snapshot(metrics, 0.0)
    assert snap.samples[("medstream_predictions", (("kind", "scan"), ("model", "scan_cnn")))] == 3
    tri = triton(0.0, ok=5, count=9, execs=2, queue=10, compute=20)
    assert sum_by(tri.samples, "nv_inference_request_success", "model") == {"scan_cnn": 5}
    assert not any(name.endswith("_created") for name, _ in snap.samples)


def test_increase_handles_new_series_and_counter_reset() -> None:
    prev = Snapshot(at=0, samples={("a", ()): 10.0, ("b", ()): 5.0})
    cur = Snapshot(at=2, samples={("a", ()): 14.0, ("b", ()): 2.0, ("c", ()): 7.0})
    assert increase(prev, cur) == {("a", ()): 4.0, ("b", ()): 2.0, ("c", ()): 7.0}
    assert increase(None, cur) == dict(cur.samples)
    assert increase(Snapshot(at=0, error="down"), cur) == dict(cur.samples)


def test_sum_by_groups_by_several_labels() -> None:
    samples = {
        ("d", (("kind", "scan"), ("reason", "bad_dicom"))): 2.0,
        ("d", (("kind", "scan"), ("reason", "oversize"))): 1.0,
        ("d", (("kind", "vitals"), ("reason", "bad_dicom"))): 4.0,
        ("other", (("kind", "scan"),)): 100.0,
    }
    assert sum_by(samples, "d", "kind") == {"scan": 3.0, "vitals": 4.0}
    assert sum_by(samples, "d", "kind", "reason")["scan/oversize"] == 1.0
    assert sum_by(samples, "d") == {"": 7.0}


@pytest.mark.parametrize(
    ("q", "expected"),
    [(0.5, 1.5), (0.25, 1.0), (0.75, 2.0), (0.875, 3.0), (1.0, 4.0), (0.0, 0.0)],
)
def test_histogram_quantile_interpolates_like_prometheus(q: float, expected: float) -> None:
    # 4 observations: one in (0,1], two in (1,2], one in (2,4]
    buckets = [(1.0, 1.0), (2.0, 3.0), (4.0, 4.0), (math.inf, 4.0)]
    assert histogram_quantile(q, buckets) == pytest.approx(expected)


def test_histogram_quantile_in_inf_bucket_and_empty() -> None:
    assert histogram_quantile(0.99, [(1.0, 1.0), (math.inf, 10.0)]) == 1.0
    assert histogram_quantile(0.5, [(1.0, 0.0), (math.inf, 0.0)]) is None
    assert histogram_quantile(0.5, []) is None


def test_buckets_by_matches_observations(metrics: Metrics) -> None:
    for size in (1, 3, 3, 30):
        metrics.batch_size.labels(model="scan_cnn").observe(size)
    got = buckets_by(worker_snapshot(metrics, 0).samples, "medstream_batch_size", "model")
    pairs = dict(got["scan_cnn"])
    assert pairs[1.0] == 1 and pairs[4.0] == 3 and pairs[32.0] == 4 and pairs[math.inf] == 4


def test_frame_rates_and_percentiles_cover_the_window(metrics: Metrics) -> None:
    metrics.messages_consumed.labels(kind="scan").inc(10)
    metrics.predictions.labels(kind="scan", model="scan_cnn").inc(10)
    metrics.end_to_end_seconds.labels(kind="scan").observe(60.0)  # before the window
    prev_w = worker_snapshot(metrics, 100.0)
    metrics.messages_consumed.labels(kind="scan").inc(20)
    metrics.predictions.labels(kind="scan", model="scan_cnn").inc(18)
    metrics.deadletters.labels(kind="scan", reason="bad_dicom").inc(2)
    for _ in range(18):
        metrics.end_to_end_seconds.labels(kind="scan").observe(0.2)
    for size in (8, 8, 2):
        metrics.batch_size.labels(model="scan_cnn").observe(size)
    metrics.ready.set(1)
    metrics.consumer_lag.labels(topic="scans", partition="0").set(5)
    metrics.consumer_lag.labels(topic="scans", partition="1").set(7)
    cur_w = worker_snapshot(metrics, 110.0)
    prev_t = triton(100.0, ok=10, count=40, execs=10, queue=1_000, compute=5_000)
    cur_t = triton(110.0, ok=14, count=60, execs=12, queue=3_000, compute=13_000)

    frame = compute_frame(prev_w, cur_w, prev_t, cur_t)

    assert frame.window_s == pytest.approx(10.0)
    assert frame.ready == 1.0
    (scan,) = frame.kinds
    assert (scan.consumed, scan.predictions, scan.deadletters) == (30, 28, 2)
    assert scan.per_s == pytest.approx((2.0, 1.8, 0.2))
    assert 0.1 < scan.e2e[1] <= 0.25  # the 60 s observation lies outside the window
    (model,) = frame.models
    assert model.batch_mean == pytest.approx(6.0)
    assert model.triton_queue_ms == pytest.approx(0.5)  # 2000 us over 4 requests
    assert model.triton_compute_ms == pytest.approx(2.0)
    assert model.triton_batch == pytest.approx(10.0)  # 20 inferences in 2 executions
    assert frame.deadletters == {"scan/bad_dicom": 2.0}
    assert frame.lag == {"scans": 12.0}


def test_first_frame_has_totals_but_no_rates(metrics: Metrics) -> None:
    metrics.messages_consumed.labels(kind="vitals").inc(4)
    frame = compute_frame(None, worker_snapshot(metrics, 1.0), None, Snapshot(at=1, error="x"))
    assert frame.window_s is None
    assert frame.kinds[0].consumed == 4 and frame.kinds[0].per_s == (None, None, None)
    assert frame.triton_error == "x"


def test_render_shows_key_figures_and_down_states(metrics: Metrics) -> None:
    metrics.predictions.labels(kind="scan", model="scan_cnn").inc(7)
    metrics.circuit_open.labels(model="scan_cnn").set(1)
    metrics.inference_errors.labels(model="scan_cnn", code="UNAVAILABLE").inc(3)
    metrics.ready.set(0)
    frame = compute_frame(None, worker_snapshot(metrics, 0), None, Snapshot(at=0, error="refused"))
    text = render(frame, "http://w/metrics", "http://t/metrics")
    assert "[NOT READY]" in text and "triton http://t/metrics [DOWN: refused]" in text
    assert "OPEN" in text and "scan_cnn/UNAVAILABLE=3" in text
    scan_line = next(line for line in text.splitlines() if line.startswith("scan "))
    assert scan_line.split()[3] == "7"

    down = compute_frame(None, Snapshot(at=0, error="timed out"), None, Snapshot(at=0))
    assert "[DOWN: timed out]" in render(down, "http://w/metrics", "http://t/metrics")
