"""Helpers for the worker integration tests: topics, a worker subprocess, inputs, outputs.

The worker runs as `python -m worker.cli worker` with its own consumer group, topics, web
port and state dir, against the real broker and Triton of the session stack.
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
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from kafka import KafkaConsumer, KafkaProducer
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from medstream_tools.localstack.stack import StackConfig, triton_up
from worker.contracts import VitalsWindow, encode_vitals
from worker.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
MAX_SCAN_BYTES = 2 * 1024 * 1024


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Topics:
    """The four topics of one test."""

    scans: str
    vitals: str
    predictions: str
    deadletter: str

    @classmethod
    def create(cls, topic_factory: Callable[..., str], partitions: int = 4) -> Topics:
        big = {"max.message.bytes": str(10 * 1024 * 1024)}
        return cls(topic_factory("scans", partitions, big), topic_factory("vitals", partitions),
                   topic_factory("predictions", partitions), topic_factory("deadletter", partitions))


@dataclass
class WorkerProcess:
    """One `medstream worker` subprocess; its log goes to `state_dir/worker.log`."""

    settings: Settings
    topics: Topics
    state_dir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    app_id: str = field(default_factory=lambda: f"it-{uuid.uuid4().hex[:10]}")
    web_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEDSTREAM_")}
        env.update({
            "MEDSTREAM_KAFKA_BOOTSTRAP": self.settings.kafka_bootstrap,
            "MEDSTREAM_TRITON_GRPC_URL": self.settings.triton_grpc_url,
            "MEDSTREAM_TOPIC_SCANS": self.topics.scans,
            "MEDSTREAM_TOPIC_VITALS": self.topics.vitals,
            "MEDSTREAM_TOPIC_PREDICTIONS": self.topics.predictions,
            "MEDSTREAM_TOPIC_DEADLETTER": self.topics.deadletter,
            "MEDSTREAM_APP_ID": self.app_id,
            "MEDSTREAM_WEB_PORT": str(self.web_port),
            "MEDSTREAM_STATE_DIR": str(self.state_dir),
            "MEDSTREAM_MAX_SCAN_BYTES": str(MAX_SCAN_BYTES),
            "MEDSTREAM_RETRY_MAX_S": "1.0",
            "PYTHONPATH": str(ROOT),
        })
        env.update(self.extra_env)
        return env

    def start(self) -> WorkerProcess:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.state_dir / "worker.log", "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen([sys.executable, "-m", "worker.cli", "worker"], cwd=ROOT,
                                     env=self.env(), stdout=log, stderr=subprocess.STDOUT)
        log.close()
        return self

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}{path}", timeout=2) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.assert_alive()
            try:
                if self.get("/ready")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"worker not ready in {timeout_s}s:\n{self.log_tail()}")

    def assert_alive(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"worker exited with {self.proc.returncode}:\n{self.log_tail()}")

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        """One sample from the worker's /metrics (0 when absent)."""
        from prometheus_client.parser import text_string_to_metric_families

        body = self.get("/metrics")[1].decode()
        for family in text_string_to_metric_families(body):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in (labels or {}).items()):
                    return float(sample.value)
        return 0.0

    def kill(self, sig: int = signal.SIGKILL) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def log_tail(self, lines: int = 40) -> str:
        path = self.state_dir / "worker.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def producer(settings: Settings) -> KafkaProducer:
    return KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all",
                         max_request_size=12 * 1024 * 1024, linger_ms=5)


def publish(settings: Settings, topic: str, items: Iterable[tuple[bytes | None, bytes]]) -> None:
    """Produce (key, value) pairs and wait for every acknowledgement."""
    prod = producer(settings)
    try:
        for fut in [prod.send(topic, key=k, value=v) for k, v in items]:
            fut.get(timeout=30)
    finally:
        prod.close()


@dataclass(frozen=True)
class Output:
    topic: str
    key: bytes | None
    value: bytes
    headers: dict[str, bytes]

    def json(self) -> dict[str, Any]:
        return json.loads(self.value)


def collect(settings: Settings, topics: Topics, done: Callable[[list[Output]], bool],
            timeout_s: float, worker: WorkerProcess | None = None) -> list[Output]:
    """Read predictions + dead letters from the start until `done(outputs)` or the timeout."""
    consumer = KafkaConsumer(topics.predictions, topics.deadletter,
                             bootstrap_servers=settings.kafka_bootstrap,
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             group_id=None, consumer_timeout_ms=500)
    outputs: list[Output] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and not done(outputs):
            for batch in consumer.poll(timeout_ms=500).values():
                outputs += [Output(m.topic, m.key, m.value, dict(m.headers or [])) for m in batch]
            if worker is not None:
                worker.assert_alive()
    finally:
        consumer.close()
    return outputs


def keys(outputs: list[Output], topic: str) -> set[bytes | None]:
    return {o.key for o in outputs if o.topic == topic}


# --- inputs ----------------------------------------------------------------------------------

SAMPLE_DICOMS = ("CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm", "US1_J2KR.dcm")


def dicom_scans(n: int, patient: str = "pseudo-scan") -> list[tuple[str, bytes]]:
    """`n` DICOM files (real sample images) with fresh SOPInstanceUIDs: (uid, bytes)."""
    out = []
    for i in range(n):
        ds = pydicom.dcmread(get_testdata_file(SAMPLE_DICOMS[i % len(SAMPLE_DICOMS)]))
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.PatientID = patient
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        out.append((str(ds.SOPInstanceUID), buf.getvalue()))
    return out


def vitals_window(event_id: str, rows: int = 60, seed: int = 0, **overrides: Any) -> bytes:
    """A medstream.vitals/v1 window with plausible values and a few gaps."""
    rng = np.random.default_rng(seed)
    base = np.array([80, 97, 16, 120, 75, 37.0])
    values = (base + rng.normal(0, 1, (rows, 6)) * np.array([5, 1, 2, 8, 5, 0.2])).round(1).tolist()
    values[rows // 2][1] = None
    value = encode_vitals(VitalsWindow(event_id=event_id, patient_id=f"pseudo-{seed}",
                                       device_id="monitor-1", start=datetime.now(UTC),
                                       interval_s=1.0, values=values))
    return json.dumps({**json.loads(value), **overrides}).encode() if overrides else value


def wait_for(worker: WorkerProcess, what: str, check: Callable[[], bool], timeout_s: float) -> None:
    """Poll `check` until true; fails with the worker's log tail on timeout or if it died."""
    deadline = time.monotonic() + timeout_s
    while not check():
        worker.assert_alive()
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}:\n{worker.log_tail()}")
        time.sleep(0.2)


def private_triton(settings: Settings, state_dir: Path) -> StackConfig:
    """Start a Triton of the test's own (free ports, state under `state_dir`), so it can be
    stopped and restarted without touching the session stack; returns its StackConfig."""
    cfg = StackConfig.from_settings(settings, state_dir=state_dir, http_port=free_port(),
                                    grpc_port=free_port(), metrics_port=free_port())
    cfg.state_dir.mkdir()
    triton_up(cfg)
    return cfg

