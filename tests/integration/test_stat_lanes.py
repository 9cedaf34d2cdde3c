"""STAT lanes through the real broker and Triton (docs/lanes.md): STAT scans overtake a routine
backlog while routine keeps progressing; every outcome names the lane that served it; a missing
STAT topic fails start-up naming it; Triton serves both lanes' request priorities."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as triton_http
from prometheus_client.parser import text_string_to_metric_families

from medstream_tools.soak.worker import ROOT, http_get
from tests.support.harness import (
    StatTopics,
    collect,
    dicom_scans,
    keys,
    mixed_scans,
    producer,
    publish,
    vitals_window,
)
from tests.support.harness import TopicsWorker as WorkerProcess
from worker.contracts import LANE_HEADER, Prediction, Skip, decode_output
from worker.inference.triton import TritonBackend
from worker.kinds.scan import scan_model_spec
from worker.lanes import ROUTINE, STAT, TRITON_PRIORITY
from worker.metrics import Metrics
from worker.run import probe_dims
from worker.settings import Settings

pytestmark = pytest.mark.integration

BACKLOG = 1500
STAT_SCANS = 5


def lane_metric(port: int, name: str, lane: str) -> float:
    """A scan-lane sample from the /metrics of the worker on `port`."""
    body = http_get(f"http://127.0.0.1:{port}/metrics")[1].decode()
    return sum(s.value for f in text_string_to_metric_families(body) for s in f.samples
               if s.name == name and s.labels.get("kind") == "scan" and s.labels.get("lane") == lane)


def test_stat_scans_overtake_a_routine_backlog_and_routine_still_progresses(
        settings: Settings, topic_factory, tmp_path: Path) -> None:
    topics = StatTopics.create(topic_factory)
    backlog = dicom_scans(BACKLOG, patient="pseudo-lanes")
    publish(settings, topics.scans, [(f"study-{i % 64}".encode(), v)
                                     for i, (_, v) in enumerate(backlog)])
    worker = WorkerProcess(settings, topics, tmp_path / "worker",
                           extra_env={"MEDSTREAM_SCAN__MAX_BATCH": "16"}).start()
    stat_port = worker.web_port + 1  # the STAT worker (worker/multiprocess.py)
    try:
        worker.wait_ready()
        worker.wait_until("the STAT worker /ready",
                          lambda: http_get(f"http://127.0.0.1:{stat_port}/ready")[0] == 200, 120)
        started = collect(settings, topics, lambda o: len(keys(o, topics.predictions)) >= 50,
                          180, worker)
        served_before = len(keys(started, topics.predictions))
        stat = dicom_scans(STAT_SCANS, patient="pseudo-stat")
        prod = producer(settings)
        try:
            for _, value in stat:  # a few STAT scans, 0.2 s apart
                prod.send(topics.scans_stat, key=b"study-stat", value=value).get(timeout=30)
                time.sleep(0.2)
        finally:
            prod.close()
        stat_keys = {uid.encode() for uid, _ in stat}
        expected = {uid.encode() for uid, _ in backlog} | stat_keys
        outputs = collect(settings, topics, lambda o: keys(o, topics.predictions) >= expected,
                          600, worker)
        predictions = {o.key: o.json() for o in outputs if o.topic == topics.predictions}
        assert set(predictions) == expected and keys(outputs, topics.deadletter) == set()

        def produced(key: bytes) -> datetime:
            return datetime.fromisoformat(predictions[key]["produced_at"])

        last_stat = max(produced(k) for k in stat_keys)
        routine = [produced(uid.encode()) for uid, _ in backlog]
        after = sum(t > last_stat for t in routine)
        pending = BACKLOG - served_before  # at most this many routine scans waited for STAT
        assert after >= pending // 2, (after, pending)  # FIFO would serve the STAT scans last
        first_stat = min(produced(k) for k in stat_keys)
        assert any(first_stat <= t <= last_stat for t in routine)  # routine went on meanwhile
        assert lane_metric(stat_port, "medstream_lane_records_total", STAT) == STAT_SCANS
        assert lane_metric(worker.web_port, "medstream_lane_records_total", ROUTINE) == BACKLOG
        assert lane_metric(stat_port, "medstream_lane_end_to_end_seconds_count", STAT) == (
            STAT_SCANS)
    finally:
        worker.stop()
    assert worker.proc is not None and worker.proc.returncode == 0, worker.log_tail()


def test_every_outcome_names_the_lane_that_served_it(settings: Settings, topic_factory,
                                                    tmp_path: Path) -> None:
    """Predictions, skips and dead letters of both lanes: `lane` field, `worker.lane` header
    (docs/lanes.md); the routine worker's id is `<id>-0`, the STAT worker's `<id>-stat`."""
    topics = StatTopics.create(topic_factory, partitions=2)
    sent = {  # topic -> (key, value), and the lane each input is published on
        topics.scans: [(uid.encode(), v) for uid, v in dicom_scans(3, patient="pseudo-r")],
        topics.vitals: [(b"pat-r", vitals_window(f"vr-{i}", seed=i)) for i in range(2)]
        + [(b"bad-routine", b"{not json")],
        topics.scans_stat: [(uid.encode(), v) for uid, v, _ in mixed_scans(2, patient="pseudo-s")],
        topics.vitals_stat: [(b"pat-s", vitals_window("vs-0", seed=5)), (b"bad-stat", b"[1, 2")],
    }
    lane_of = {topics.scans: ROUTINE, topics.vitals: ROUTINE, topics.scans_stat: STAT,
               topics.vitals_stat: STAT}
    for topic, items in sent.items():
        publish(settings, topic, items)
    expected = {json.loads(v)["event_id"] if k.startswith(b"pat-") else k.decode(): lane_of[t]
                for t, items in sent.items() for k, v in items}
    worker = WorkerProcess(settings, topics, tmp_path).start()
    try:
        worker.wait_ready()
        outputs = collect(settings, topics, lambda o: len(o) >= len(expected), 240, worker)
    finally:
        worker.stop()
    served, kinds = {}, set()
    for out in outputs:
        if out.topic == topics.deadletter:
            source = out.headers["source.topic"].decode()
            assert out.headers[LANE_HEADER].decode() == lane_of[source]
            suffix = "-stat" if lane_of[source] == STAT else "-0"
            assert out.headers["worker.id"].decode().endswith(suffix)
            served[out.key.decode()] = out.headers[LANE_HEADER].decode()
        else:
            record = decode_output(out.value)
            served[record.event_id] = record.lane
            kinds.add(type(record))
    assert served == expected
    assert kinds == {Prediction, Skip}  # skips name their lane too
    assert set(keys(outputs, topics.deadletter)) == {b"bad-routine", b"bad-stat"}
    assert worker.proc is not None and worker.proc.returncode == 0, worker.log_tail()


def test_a_missing_stat_topic_fails_start_up_naming_it(settings: Settings, topic_factory,
                                                        tmp_path: Path) -> None:
    worker = WorkerProcess(settings, StatTopics.create(topic_factory, partitions=1), tmp_path)
    missing = f"never-created-stat-{uuid.uuid4().hex[:8]}"
    done = subprocess.run([sys.executable, "-m", "worker.cli", "worker"], cwd=ROOT, check=False,
                          env={**worker.env(), "MEDSTREAM_VITALS__STAT_TOPIC": missing},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "topics missing" in done.stderr and missing in done.stderr


def test_triton_serves_both_lanes_priorities(settings: Settings) -> None:
    """A scan model with `priority_levels: 2` (as shipped) loads in the session's Triton and
    answers the STAT (1) and routine (2) request priorities alike."""
    http = triton_http.InferenceServerClient(settings.triton_http_url)
    config = http.get_model_config("scan_cnn")
    name = f"scan_cnn_lanes_{uuid.uuid4().hex[:8]}"
    config["name"] = name
    config["dynamic_batching"].update(priority_levels=2, default_priority_level=2)
    onnx = (ROOT / "triton_models" / "scan_cnn" / "1" / "model.onnx").read_bytes()
    http.load_model(name, config=json.dumps(config), files={"file:1/model.onnx": onnx})
    spec = scan_model_spec(name)

    async def infer(priority: int) -> np.ndarray:
        backend = TritonBackend(settings.triton_grpc_url, timeout_s=10, metrics=Metrics.create(),
                                priority=priority)
        try:
            models = await backend.start([spec])
            inputs = {tensor: np.zeros((1, *dims), np.float32)
                      for tensor, dims in probe_dims(spec, models[name]).items()}
            return (await backend.infer(name, inputs))["probabilities"]
        finally:
            await backend.stop()

    try:
        served = http.get_model_config(name)["dynamic_batching"]
        assert (served["priority_levels"], served["default_priority_level"]) == (2, 2)
        stat, routine = (asyncio.run(infer(TRITON_PRIORITY[lane])) for lane in (STAT, ROUTINE))
        np.testing.assert_allclose(stat, routine)
        assert stat.shape == (1, 2)
    finally:
        http.unload_model(name)
        http.close()
