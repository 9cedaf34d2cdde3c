"""Observability against the real stack: Triton's nv_inference_* series, and a real worker's
/metrics and /ready after an end-to-end run (Tansu + Triton + `medstream worker`).

The tests of this module run in file order and share one worker: end-to-end run, /ready while
Triton is stopped and after it returns, then the dashboard's series and `medstream top`.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import pydicom
import pytest
import tritonclient.http as httpclient
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from observability_queries import (
    ROOT,
    TARGET_LABELS,
    dashboard_queries,
    exposition_catalog,
    parse,
    rule_queries,
    selectors,
    triton_catalog,
    worker_catalog,
)
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from worker.localstack import triton as local_triton
from worker.localstack.stack import StackConfig, triton_up
from worker.promstats import parse_metrics, sum_by
from worker.settings import Settings
from worker.topics import create_topics

pytestmark = pytest.mark.integration

CHANNELS = ["hr", "spo2", "rr", "sbp", "dbp", "temp"]
N_VITALS, N_SCANS, N_BAD_VITALS, N_BAD_SCANS, N_OUTAGE = 150, 40, 3, 2, 20


def wait_for(what: str, check: Callable[[], object], timeout_s: float = 120.0) -> object:
    """Poll `check` until it returns something truthy; fail naming `what` after the deadline."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout_s:.0f}s waiting for {what}")


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def scrape(url: str) -> str:
    status, body = get(url)
    assert status == 200, url
    return body.decode()


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
    for sel in (s for s in series_used() if s.name.startswith("nv_")):
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def vitals_message(i: int) -> tuple[bytes, bytes]:
    start = datetime.now(UTC) - timedelta(seconds=60)
    rng = np.random.default_rng(i)
    base = np.array([80, 97, 16, 120, 75, 36.8])
    values = (base + rng.normal(0, 1, (60, 6))).round(2).tolist()
    msg = {
        "schema": "medstream.vitals/v1",
        "event_id": f"v-{uuid.uuid4().hex}",
        "patient_id": f"pseudo-{i % 7}",
        "device_id": "monitor-1",
        "start": start.isoformat().replace("+00:00", "Z"),
        "interval_s": 1.0,
        "channels": CHANNELS,
        "values": values,
    }
    return f"pseudo-{i % 7}".encode(), json.dumps(msg).encode()


def scan_message(template: pydicom.Dataset) -> tuple[bytes, bytes]:
    template.SOPInstanceUID = template.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    buf = io.BytesIO()
    template.save_as(buf, enforce_file_format=True)
    return str(template.StudyInstanceUID).encode(), buf.getvalue()


@dataclass
class WorkerRun:
    """One `medstream worker` on unique topics, and what was sent to it."""

    settings: Settings
    url: str
    producer: KafkaProducer
    sent: dict[str, int] = field(default_factory=lambda: {"scan": 0, "vitals": 0})

    def send(self, topic: str, kind: str, messages: list[tuple[bytes, bytes]]) -> None:
        for key, value in messages:
            self.producer.send(topic, key=key, value=value)
        self.producer.flush()
        self.sent[kind] += len(messages)

    def metrics(self) -> dict:
        return parse_metrics(scrape(self.url + "/metrics"), time.monotonic()).samples

    def read(self, topic: str) -> list:
        consumer = KafkaConsumer(
            topic,
            bootstrap_servers=self.settings.kafka_bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
            consumer_timeout_ms=3000,
        )
        try:
            return list(consumer)
        finally:
            consumer.close()


@pytest.fixture(scope="module")
def worker(stack: StackConfig, settings: Settings, tmp_path_factory) -> Iterator[WorkerRun]:
    suffix = uuid.uuid4().hex[:10]
    topics = {k: f"obs-{k}-{suffix}" for k in ("scans", "vitals", "predictions", "deadletter")}
    create_topics(settings.kafka_bootstrap, [NewTopic(t, 4, 1) for t in topics.values()])
    port, state = free_port(), tmp_path_factory.mktemp("worker")
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "MEDSTREAM_WEB_PORT": str(port),
        "MEDSTREAM_STATE_DIR": str(state),
        "MEDSTREAM_APP_ID": f"obs-{suffix}",
        "MEDSTREAM_RETRY_MAX_S": "1",
        **{f"MEDSTREAM_TOPIC_{k.upper()}": v for k, v in topics.items()},
    }
    run = WorkerRun(
        Settings(_env_file=None, **{f"topic_{k}": v for k, v in topics.items()}),
        f"http://127.0.0.1:{port}",
        KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all"),
    )
    # A backlog before the worker starts, so that take(max, within) fills batches.
    run.send(topics["vitals"], "vitals", [vitals_message(i) for i in range(N_VITALS)])
    run.send(topics["vitals"], "vitals", [(b"k", b"{not json")] * N_BAD_VITALS)
    template = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    run.send(topics["scans"], "scan", [scan_message(template) for _ in range(N_SCANS)])
    run.send(topics["scans"], "scan", [(b"k", b"\x00garbage, not DICOM")] * N_BAD_SCANS)
    log = (state / "worker.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker.cli", "worker"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def ready() -> bool:
        if proc.poll() is not None:
            pytest.fail(
                f"worker exited {proc.returncode}: {(state / 'worker.log').read_text()[-3000:]}"
            )
        try:
            return get(run.url + "/ready")[0] == 200
        except OSError:
            return False

    try:
        wait_for("the worker's /ready", ready, 120)
        yield run
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        run.producer.close()
        log.close()


def records(run: WorkerRun, topic: str, expected: int) -> list:
    """All records of `topic` once there are at least `expected`."""

    def enough() -> list | None:
        got = run.read(topic)
        return got if len(got) >= expected else None

    return wait_for(f"{expected} records on {topic}", enough)  # type: ignore[return-value]


def predictions_by_kind(run: WorkerRun, expected: int) -> dict[str, int]:
    counts: dict[str, int] = {}
    for record in records(run, run.settings.topic_predictions, expected):
        kind = json.loads(record.value)["kind"]
        counts[kind] = counts.get(kind, 0) + 1
    return counts


def metrics_when(run: WorkerRun, what: str, predicate: Callable[[dict], bool]) -> dict:
    """The worker's samples once `predicate` holds for them."""

    def check() -> dict | None:
        samples = run.metrics()
        return samples if predicate(samples) else None

    return wait_for(what, check)  # type: ignore[return-value]


def ready_status(run: WorkerRun) -> tuple[int, bytes]:
    return get(run.url + "/ready")


def test_worker_metrics_agree_with_the_topics_after_an_end_to_end_run(worker: WorkerRun) -> None:
    by_kind = predictions_by_kind(worker, N_VITALS + N_SCANS)
    assert by_kind == {"vitals": N_VITALS, "scan": N_SCANS}
    dead = records(worker, worker.settings.topic_deadletter, N_BAD_VITALS + N_BAD_SCANS)
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
        worker.settings.topic_scans,
        worker.settings.topic_vitals,
    }


def test_ready_flips_while_triton_is_stopped_and_back_when_it_returns(
    worker: WorkerRun, stack: StackConfig
) -> None:
    local_triton.service(stack.state_dir).stop()
    try:
        worker.send(
            worker.settings.topic_vitals,
            "vitals",
            [vitals_message(1000 + i) for i in range(N_OUTAGE)],
        )
        wait_for("/ready to answer 503", lambda: ready_status(worker)[0] == 503, 60)
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
