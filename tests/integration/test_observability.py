"""Observability against the real stack: Triton's nv_inference_* series, and a real worker's
/metrics and /ready after an end-to-end run (Tansu + Triton + `medstream worker`).

The tests of this module run in file order and share one worker: end-to-end run, /ready while
Triton is stopped and after it returns, then the dashboard's series and `medstream top`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import numpy as np
import pytest
import tritonclient.http as httpclient

from medstream_tools.localstack import triton as local_triton
from medstream_tools.localstack.stack import StackConfig, triton_up
from medstream_tools.soak.waiting import wait_for
from medstream_tools.top.promstats import parse_metrics, sum_by
from tests.support.observability import (
    N_BAD_SCANS,
    N_BAD_VITALS,
    N_SCANS,
    N_VITALS,
    WorkerRun,
    metrics_when,
    predictions_by_kind,
    ready_status,
    records,
    running_worker,
    scrape,
    vitals_messages,
)
from tests.support.observability_queries import (
    ROOT,
    TARGET_LABELS,
    TRITON_GPU_SERIES,
    dashboard_queries,
    exposition_catalog,
    parse,
    rule_queries,
    selectors,
    triton_catalog,
    worker_catalog,
)
from worker.settings import Settings

pytestmark = pytest.mark.integration

N_OUTAGE = 20


@pytest.fixture(scope="module")
def worker(stack: StackConfig, settings: Settings, tmp_path_factory) -> Iterator[WorkerRun]:
    with running_worker(settings, tmp_path_factory.mktemp("worker")) as run:
        yield run


def series_used() -> list:
    return [s for _, e in dashboard_queries() + rule_queries() for s in selectors(parse(e))]


def test_live_triton_exports_the_nv_inference_series_the_dashboard_uses(
    settings: Settings,
) -> None:
    url = f"http://{settings.triton_metrics_url}/metrics"
    before = parse_metrics(scrape(url), 0).samples
    client = httpclient.InferenceServerClient(settings.triton_http_url)
    image = httpclient.InferInput("image", [2, 1, 128, 128], "FP32")
    image.set_data_from_numpy(np.random.default_rng(0).random((2, 1, 128, 128), dtype=np.float32))
    for _ in range(3):
        client.infer("scan_cnn", [image])
    text = scrape(url)
    live = exposition_catalog(text)
    on_cpu = (
        s for s in series_used() if s.name.startswith("nv_") and s.name not in TRITON_GPU_SERIES
    )
    for sel in on_cpu:
        assert sel.name in live, f"Triton no longer exports {sel.name}"
        assert sel.labels <= live[sel.name] | TARGET_LABELS, sel
    assert {n for n in triton_catalog() if n.startswith("nv_inference_")} == {
        n for n in live if n.startswith("nv_inference_")
    }, "tests/unit/data/triton-2.51-metrics.txt differs from the live server: recapture it"
    after = parse_metrics(text, 1).samples

    def moved(name: str) -> float:
        return sum_by(after, name, "model")["scan_cnn"] - sum_by(before, name, "model")["scan_cnn"]

    assert moved("nv_inference_request_success") == 3
    assert moved("nv_inference_count") == 6  # 3 requests x 2 images
    assert moved("nv_inference_compute_infer_duration_us") > 0


def test_worker_metrics_agree_with_the_topics_after_an_end_to_end_run(worker: WorkerRun) -> None:
    by_kind = predictions_by_kind(worker, N_VITALS + N_SCANS)
    assert by_kind == {"vitals": N_VITALS, "scan": N_SCANS}
    dead = records(worker, worker.topics.deadletter, N_BAD_VITALS + N_BAD_SCANS)
    m = metrics_when(
        worker,
        "predictions_total to match the topic",
        lambda s: sum_by(s, "medstream_predictions", "kind") == by_kind,
    )
    assert sum_by(m, "medstream_messages_consumed", "kind") == worker.sent
    assert sum(sum_by(m, "medstream_deadletters", "kind").values()) == len(dead)
    assert all(sum_by(m, "medstream_deadletters", "reason"))  # every dead letter has a reason
    assert sum_by(m, "medstream_end_to_end_seconds_count", "kind") == by_kind
    assert sum_by(m, "medstream_predictions", "model") == {
        "vitals_lstm": N_VITALS,
        "scan_cnn": N_SCANS,
    }
    batches = sum_by(m, "medstream_batch_size_count", "model")
    served = sum_by(m, "medstream_batch_size_sum", "model")
    singles = sum_by(
        {k: v for k, v in m.items() if ("le", "1.0") in k[1]},
        "medstream_batch_size_bucket",
        "model",
    )
    for model in ("vitals_lstm", "scan_cnn"):
        assert served[model] > batches[model], f"{model}: every batch had one record"
        assert singles[model] < batches[model], f"{model}: no batch > 1 in the histogram"
    assert set(sum_by(m, "medstream_inference_seconds_count", "model")) == {
        "vitals_lstm",
        "scan_cnn",
    }
    assert m[("medstream_ready", ())] == 1.0
    m = metrics_when(
        worker,
        "consumer lag 0 on every partition",
        lambda s: (lag := sum_by(s, "medstream_consumer_lag", "topic")) and not any(lag.values()),
    )
    assert set(sum_by(m, "medstream_consumer_lag", "topic")) == {
        worker.topics.scans,
        worker.topics.vitals,
    }


def test_ready_flips_while_triton_is_stopped_and_back_when_it_returns(
    worker: WorkerRun, stack: StackConfig
) -> None:
    local_triton.service(stack.state_dir).stop()
    try:
        worker.send("vitals", vitals_messages(N_OUTAGE, seed=1000))
        # the probe's `triton` blocker comes first; wait for the breaker's
        wait_for("/ready to name the open breaker",
                 lambda: b"triton:vitals_lstm" in ready_status(worker)[1], 60)
        status, body = ready_status(worker)
        assert status == 503 and "triton:vitals_lstm" in json.loads(body)["blockers"]
        m = worker.metrics()
        assert m[("medstream_ready", ())] == 0.0
        assert sum_by(m, "medstream_circuit_open", "model")["vitals_lstm"] == 1.0
        assert sum_by(m, "medstream_inference_errors", "model")["vitals_lstm"] >= 3
    finally:
        triton_up(stack)
    wait_for("/ready to answer 200 again", lambda: ready_status(worker)[0] == 200, 120)
    by_kind = predictions_by_kind(worker, N_VITALS + N_SCANS + N_OUTAGE)
    assert by_kind["vitals"] == N_VITALS + N_OUTAGE, "a message was lost during the outage"
    m = metrics_when(
        worker,
        "metrics after recovery",
        lambda s: sum_by(s, "medstream_predictions", "kind") == by_kind,
    )
    assert sum_by(m, "medstream_circuit_open", "model")["vitals_lstm"] == 0.0
    assert m[("medstream_ready", ())] == 1.0


def test_every_worker_series_the_dashboard_uses_is_on_the_live_worker(worker: WorkerRun) -> None:
    live = exposition_catalog(scrape(worker.url + "/metrics"))
    missing = set(worker_catalog()) - set(live)
    assert not missing, f"worker metrics never exported during the run: {sorted(missing)}"
    for sel in (s for s in series_used() if s.name in worker_catalog()):
        assert sel.labels <= live[sel.name] | TARGET_LABELS, sel


def test_top_once_renders_the_live_worker_and_triton(worker: WorkerRun, settings: Settings) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "worker.cli",
            "top",
            "--once",
            "--url",
            worker.url + "/metrics",
            "--triton-url",
            f"http://{settings.triton_metrics_url}/metrics",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "[READY]" in lines[0] and lines[0].endswith("[up]")
    vitals = next(line.split() for line in lines if line.startswith("vitals "))
    assert vitals[3] == str(N_VITALS + N_OUTAGE)  # predicted total
    assert any(line.startswith("vitals_lstm ") and "closed" in line for line in lines)
