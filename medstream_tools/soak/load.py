"""A steady stream of scans and vital windows (plus a few poison messages) for chaos runs.

Every message gets a known event id: the SOPInstanceUID for scans (a fresh one per message,
pixels from pydicom's test files), `event_id` for vital windows, and the Kafka key for the
poison messages (they come back as dead letters under their original key). An input counts
only once the broker acknowledged it.
"""

from __future__ import annotations

import io
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import pydicom
from kafka import KafkaProducer
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from medstream_tools.soak.fixture_scans import synthetic_radiograph
from worker.contracts import VitalsWindow, encode_vitals

SCAN_FILES = ("CT_small.dcm", "MR_small.dcm", "MR_small_RLE.dcm", "JPEG2000.dcm")
POISON_EVERY = 40  # one message in POISON_EVERY is bad on purpose


def vitals_event(rng: np.random.Generator, patient: int) -> tuple[str, bytes, bytes]:
    """(event id, key, value) of one 60-row medstream.vitals/v1 window with some gaps."""
    event_id = f"v-{uuid.uuid4().hex}"
    values = (np.array([80, 97, 16, 120, 75, 36.8]) + rng.normal(0, 2, (60, 6))).round(2)
    rows: list[list[float | None]] = values.tolist()
    for r, c in zip(rng.integers(0, 60, 5), rng.integers(0, 6, 5)):
        rows[int(r)][int(c)] = None
    pseudonym = f"PSN-{patient:032x}"  # the producers' form: the worker refuses clear ids
    window = VitalsWindow(event_id=event_id, patient_id=pseudonym,
                          device_id=f"monitor-{patient}", interval_s=1.0, values=rows,
                          start=datetime.now(UTC) - timedelta(seconds=60))
    return event_id, pseudonym.encode(), encode_vitals(window)


class ScanFactory:
    """Real DICOM files from pydicom's test data (skipped by the fixture routing rules) between
    synthetic PA and AP chest radiographs (routed to the fixture model), each sent with a
    fresh SOPInstanceUID."""

    def __init__(self) -> None:
        real = [pydicom.dcmread(get_testdata_file(name)) for name in SCAN_FILES]
        chest = [synthetic_radiograph(("PA", "AP")[i % 2], seed=i) for i in range(len(real))]
        self._templates = [ds for pair in zip(chest, real) for ds in pair]

    def event(self, i: int) -> tuple[str, bytes, bytes]:
        """(SOPInstanceUID, StudyInstanceUID key, Part-10 bytes); a new study every time."""
        ds = self._templates[i % len(self._templates)]
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.StudyInstanceUID = generate_uid()  # keys spread over every partition
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        return str(ds.SOPInstanceUID), str(ds.StudyInstanceUID).encode(), buf.getvalue()

    def truncated(self) -> bytes:
        """A real DICOM cut in the middle of its pixel data."""
        _, _, data = self.event(0)
        return data[: len(data) // 2]


def poison_event(kind: str, scans: ScanFactory, rng: np.random.Generator) -> tuple[str, bytes, bytes]:
    """(key as event id, key, value) of a message that must end as a dead letter."""
    event_id = f"bad-{kind}-{uuid.uuid4().hex}"
    if kind == "scan":
        value = scans.truncated() if rng.random() < 0.5 else b"\x00not a DICOM file"
    else:
        value = vitals_event(rng, 0)[2][:40] if rng.random() < 0.5 else b"\xff\xfe"
    return event_id, event_id.encode(), value


@dataclass
class SteadyLoad:
    """Produces `vitals_per_s` + `scans_per_s` from a thread until stopped."""

    bootstrap: str
    scans_topic: str
    vitals_topic: str
    vitals_per_s: float = 10.0
    scans_per_s: float = 3.0
    stat_topics: dict[str, str] = field(default_factory=dict)  # kind -> its STAT lane's topic
    stat_every: int = 3  # with stat_topics: every stat_every-th input goes to the STAT lane
    sent: dict[str, tuple[str, object]] = field(default_factory=dict)  # id -> (kind, future)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> SteadyLoad:
        self._producer = KafkaProducer(
            bootstrap_servers=self.bootstrap, acks="all", linger_ms=5, retries=50,
            retry_backoff_ms=200, request_timeout_ms=5000, delivery_timeout_ms=60_000,
            max_request_size=2 * 1024 * 1024, max_block_ms=60_000)
        self._thread = threading.Thread(target=self._run, name="chaos-load", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        rng, scans, tick, n = np.random.default_rng(7), ScanFactory(), 0.1, 0
        debt = {"vitals": 0.0, "scan": 0.0}
        while not self._stop.wait(tick):
            debt["vitals"] += self.vitals_per_s * tick
            debt["scan"] += self.scans_per_s * tick
            for kind, topic in (("vitals", self.vitals_topic), ("scan", self.scans_topic)):
                while debt[kind] >= 1:
                    debt[kind] -= 1
                    n += 1
                    if n % POISON_EVERY == 0:
                        event_id, key, value = poison_event(kind, scans, rng)
                    elif kind == "scan":
                        event_id, key, value = scans.event(n)
                    else:
                        event_id, key, value = vitals_event(rng, n % 11)
                    target = self.stat_topics.get(kind, topic) if n % self.stat_every == 0 else topic
                    self.sent[event_id] = (kind, self._producer.send(target, key=key, value=value))

    def stop(self) -> dict[str, str]:
        """Stop, flush, and return {event id: kind} of every input the broker acknowledged."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._producer.flush(timeout=90)
        self._producer.close(timeout=10)
        return {eid: kind for eid, (kind, fut) in self.sent.items() if fut.succeeded()}

    def wait_sent(self, count: int, timeout_s: float = 120.0) -> None:
        """Block until at least `count` messages have been handed to the producer."""
        deadline = time.monotonic() + timeout_s
        while len(self.sent) < count and time.monotonic() < deadline:
            time.sleep(0.1)
