"""Shared pieces of the observability integration tests: a real `medstream worker` (the worker
tests' harness) on fresh topics, fed a backlog of good and bad input, and polling helpers (no
timing asserts: a deadline only turns "never happened" into a clear failure).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from medstream_tools.soak.accounting import read_topic
from medstream_tools.soak.waiting import wait_for
from medstream_tools.soak.worker import http_get
from medstream_tools.top.promstats import parse_metrics
from tests.support.harness import Topics, TopicsWorker, dicom_scans, publish, vitals_window
from tests.support.stack import unique_topic
from worker.settings import Settings

N_VITALS, N_SCANS, N_BAD_VITALS, N_BAD_SCANS = 150, 40, 3, 2


def scrape(url: str) -> str:
    status, body = http_get(url)
    assert status == 200, url
    return body.decode()


def vitals_messages(n: int, seed: int = 0) -> list[tuple[bytes, bytes]]:
    """`n` valid vitals windows keyed by patient pseudonym."""
    return [
        (f"pseudo-{i % 7}".encode(), vitals_window(f"v-{uuid.uuid4().hex}", seed=seed + i))
        for i in range(n)
    ]


def scan_messages(n: int) -> list[tuple[bytes, bytes]]:
    """`n` DICOM files (the harness' sample images, fresh SOPInstanceUIDs) keyed by UID."""
    return [(uid.encode(), data) for uid, data in dicom_scans(n)]


@dataclass
class WorkerRun:
    """One worker on its own topics, and how many messages of each kind were sent to it."""

    settings: Settings
    process: TopicsWorker
    sent: dict[str, int] = field(default_factory=lambda: {"scan": 0, "vitals": 0})

    @property
    def topics(self) -> Topics:
        return self.process.topics

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.process.web_port}"

    def send(self, kind: str, messages: list[tuple[bytes, bytes]]) -> None:
        topic = self.topics.scans if kind == "scan" else self.topics.vitals
        publish(self.settings, topic, messages)
        self.sent[kind] += len(messages)

    def metrics(self) -> dict:
        return parse_metrics(scrape(self.url + "/metrics"), time.monotonic()).samples

    def read(self, topic: str) -> list:
        return read_topic(self.settings.kafka_bootstrap, topic, idle_ms=3000)


@contextmanager
def running_worker(settings: Settings, state: Path, web_port: int = 0) -> Iterator[WorkerRun]:
    """A ready worker on fresh 4-partition topics whose backlog was sent before it started
    (so that take(max, within) fills batches): N_VITALS windows + N_BAD_VITALS bad JSON,
    N_SCANS DICOM files + N_BAD_SCANS garbage. Web port `web_port` (0: a free one).
    Stopped (SIGTERM) on exit."""
    def topic(prefix: str, partitions: int = 1, configs: dict | None = None) -> str:
        return unique_topic(settings, f"obs-{prefix}", partitions, configs)

    process = TopicsWorker(settings, Topics.create(topic), state)
    if web_port:
        process.web_port = web_port
    run = WorkerRun(settings, process)
    run.send("vitals", vitals_messages(N_VITALS) + [(b"k", b"{not json")] * N_BAD_VITALS)
    run.send("scan", scan_messages(N_SCANS) + [(b"k", b"\x00garbage, not DICOM")] * N_BAD_SCANS)
    run.process.start()
    try:
        run.process.wait_ready(120)
        yield run
    finally:
        run.process.stop()


def records(run: WorkerRun, topic: str, expected: int) -> list:
    """All records of `topic` once there are at least `expected`."""

    def enough() -> list | None:
        got = run.read(topic)
        return got if len(got) >= expected else None

    return wait_for(f"{expected} records on {topic}", enough)  # type: ignore[return-value]


def predictions_by_kind(run: WorkerRun, expected: int) -> dict[str, int]:
    """Predictions on the topic per `kind`, once there are at least `expected`."""
    counts: dict[str, int] = {}
    for record in records(run, run.topics.predictions, expected):
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
    return http_get(run.url + "/ready")
