"""The worker integration tests' harness: topics, a worker subprocess on them, inputs, outputs.

The worker runs as `python -m worker.cli worker` (medstream_tools.soak.worker.WorkerProcess)
with its own consumer group, topics, web port and state dir, against the real broker and
Triton of the session stack.
"""

from __future__ import annotations

import io
import json
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from kafka import KafkaConsumer, KafkaProducer
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from medstream_tools.ports import free_port
from medstream_tools.soak.fixture_scans import FIXTURE_MODEL, fixture_rules, synthetic_radiograph
from medstream_tools.soak.worker import WorkerProcess
from worker.contracts import VitalsWindow, encode_vitals
from worker.settings import Settings

MAX_SCAN_BYTES = 2 * 1024 * 1024


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

    def lane_env(self) -> dict[str, str]:
        """STAT lanes off: one routine worker process on these topics (docs/lanes.md)."""
        return {"MEDSTREAM_LANES__ENABLED": "false"}


@dataclass(frozen=True)
class StatTopics(Topics):
    """A test's topics with STAT lanes: the four, and a STAT topic per kind."""

    scans_stat: str = ""
    vitals_stat: str = ""

    @classmethod
    def create(cls, topic_factory: Callable[..., str], partitions: int = 4) -> StatTopics:
        base = Topics.create(topic_factory, partitions)
        big = {"max.message.bytes": str(10 * 1024 * 1024)}
        return cls(*vars(base).values(), topic_factory("scans-stat", partitions, big),
                   topic_factory("vitals-stat", partitions))

    def lane_env(self) -> dict[str, str]:
        """STAT lanes on, with these STAT topics."""
        return {"MEDSTREAM_LANES__ENABLED": "true", "MEDSTREAM_SCAN__STAT_TOPIC": self.scans_stat,
                "MEDSTREAM_VITALS__STAT_TOPIC": self.vitals_stat}


class TopicsWorker(WorkerProcess):
    """A worker on one test's Topics against the session stack's Settings; log in
    `state_dir/worker.log`. Scans are routed by fixture rules (chest radiographs -> scan_cnn,
    and brain/head MR -> `brain` when given; medstream_tools/soak/fixture_scans.py).
    Tests import it as `WorkerProcess`."""

    def __init__(self, settings: Settings, topics: Topics, state_dir: Path,
                 extra_env: dict[str, str] | None = None, app_id: str | None = None,
                 web_port: int | None = None, brain: str | None = None) -> None:
        self.settings, self.topics = settings, topics
        self.app_id = app_id or f"it-{uuid.uuid4().hex[:10]}"
        state_dir.mkdir(parents=True, exist_ok=True)
        rules = fixture_rules(state_dir / "routing.yaml", FIXTURE_MODEL, brain=brain)
        super().__init__("", {
            "MEDSTREAM_ROUTING__RULES": str(rules),
            "MEDSTREAM_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "MEDSTREAM_TRITON_GRPC_URL": settings.triton_grpc_url,
            "MEDSTREAM_TOPIC_SCANS": topics.scans,
            "MEDSTREAM_TOPIC_VITALS": topics.vitals,
            "MEDSTREAM_TOPIC_PREDICTIONS": topics.predictions,
            "MEDSTREAM_TOPIC_DEADLETTER": topics.deadletter,
            "MEDSTREAM_APP_ID": self.app_id,
            "MEDSTREAM_MAX_SCAN_BYTES": str(MAX_SCAN_BYTES),
            "MEDSTREAM_RETRY_MAX_S": "1.0",
            **topics.lane_env(),  # STAT lanes only with the test's STAT topics
            **(extra_env or {}),
        }, web_port or free_port(), state_dir, log_level=None)


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

def _part10(ds: pydicom.Dataset, patient: str) -> tuple[str, bytes]:
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PatientID = patient
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return str(ds.SOPInstanceUID), buf.getvalue()


def dicom_scans(n: int, patient: str = "pseudo-scan") -> list[tuple[str, bytes]]:
    """`n` synthetic chest radiographs, PA and AP in turn (the fixture rules route them to
    scan_cnn), with fresh SOPInstanceUIDs: (uid, bytes)."""
    return [_part10(synthetic_radiograph(("PA", "AP")[i % 2], seed=i), patient) for i in range(n)]


# Real sample files and what the fixture rules with `brain="brain_mri_tumour"` make of them
MIXED_SAMPLES = (("emri_small.dcm", "brain_mri_tumour"), ("CT_small.dcm", "skipped"),
                 ("US1_J2KR.dcm", "skipped"))


def mixed_scans(n: int, patient: str = "pseudo-scan") -> list[tuple[str, bytes, str]]:
    """`n` scans for several models and none: chest radiographs (-> scan_cnn), brain MR
    (-> brain_mri_tumour), CT and US (skipped), in turn: (uid, bytes, expected outcome)."""
    out = []
    for i in range(n):
        if i % 2 == 0:
            out.append((*_part10(synthetic_radiograph(("PA", "AP")[i % 4 // 2], seed=i), patient),
                        FIXTURE_MODEL))
        else:
            name, outcome = MIXED_SAMPLES[i // 2 % len(MIXED_SAMPLES)]
            out.append((*_part10(pydicom.dcmread(get_testdata_file(name)), patient), outcome))
    return out


def vitals_window(event_id: str, rows: int = 60, seed: int = 0, **overrides: Any) -> bytes:
    """A medstream.vitals/v1 window with plausible values and a few gaps."""
    rng = np.random.default_rng(seed)
    base = np.array([80, 97, 16, 120, 75, 37.0])
    values = (base + rng.normal(0, 1, (rows, 6)) * np.array([5, 1, 2, 8, 5, 0.2])).round(1).tolist()
    values[rows // 2][1] = None
    value = encode_vitals(VitalsWindow(event_id=event_id, patient_id=f"PSN-{seed:032x}",
                                       device_id="monitor-1", start=datetime.now(UTC),
                                       interval_s=1.0, values=values))
    return json.dumps({**json.loads(value), **overrides}).encode() if overrides else value


def wait_for_worker(worker: WorkerProcess, what: str, check: Callable[[], Any],
                    timeout_s: float) -> Any:
    """Poll `check` until true; fails with the worker's log tail on timeout or if it died.
    (`worker.wait_until` as a function; the readiness and resilience tests call it `wait_for`.)"""
    return worker.wait_until(what, check, timeout_s)
