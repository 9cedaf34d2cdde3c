"""Helpers of the study/alert integration tests: topics, worker environment, inputs, readers."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pydicom
from kafka import KafkaConsumer
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from medstream_tools.soak.fixture_scans import synthetic_radiograph
from tests.support.harness import Topics
from worker.contracts import (
    Alert,
    StudyResult,
    VitalsWindow,
    decode_alert,
    decode_study_result,
    encode_vitals,
)
from worker.settings import Settings


@dataclass(frozen=True)
class StudyTopics:
    """A test's internal, result and alert topics (4 partitions, like the input topics)."""

    events: str
    risks: str
    results: str
    alerts: str

    @classmethod
    def create(cls, topic_factory: Callable[..., str]) -> StudyTopics:
        return cls(topic_factory("study-events", 4), topic_factory("alert-events", 4),
                   topic_factory("studies", 4, {"cleanup.policy": "compact"}),
                   topic_factory("alerts", 4))

    def env(self, **settings: object) -> dict[str, str]:
        """The worker's MEDSTREAM_STUDIES__* variables: these topics plus `settings`."""
        names = {"enabled": "true", "events_topic": self.events, "risk_topic": self.risks,
                 "topic": self.results, "alerts_topic": self.alerts, "tick_s": "0.5",
                 **settings}
        return {f"MEDSTREAM_STUDIES__{k.upper()}": str(v) for k, v in names.items()}


def all_topics(topic_factory: Callable[..., str]) -> tuple[Topics, StudyTopics]:
    return Topics.create(topic_factory), StudyTopics.create(topic_factory)


def instance(study: str, series: str, *, sample: str = "CT_small.dcm",
             modality: str | None = None, patient: str = "pseudo-study",
             pixels: bool = True, **attributes: Any) -> tuple[str, bytes]:
    """A real sample image re-identified into `study`/`series` with a fresh SOPInstanceUID."""
    ds = pydicom.dcmread(get_testdata_file(sample))
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.PatientID = study, series, patient
    if modality is not None:
        ds.Modality = modality
    if not pixels:
        del ds.PixelData
    for name, value in attributes.items():
        if value is None:
            delattr(ds, name)
        else:
            setattr(ds, name, value)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return str(ds.SOPInstanceUID), buf.getvalue()


def radiograph(study: str, series: str, seed: int, pixels: bool = True,
               patient: str = "pseudo-study") -> tuple[str, bytes]:
    """A synthetic chest radiograph in `study`/`series` (the harness's fixture routing rules
    route it to their model; real sample CT and MR files are skipped by those rules)."""
    ds = synthetic_radiograph(("PA", "AP")[seed % 2], seed=seed)
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.PatientID = study, series, patient
    if not pixels:
        del ds.PixelData
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return str(ds.SOPInstanceUID), buf.getvalue()


NORMAL = [75, 98, 14, 120, 75, 37.0]  # NEWS2 0
DETERIORATED = [125, 89, 28, 88, 55, 39.4]  # NEWS2 hr 2 + spo2 3 + rr 3 + sbp 3 + temp 2 = 13


def windows(patient: str, pattern: list[list[float]], start: datetime) -> list[tuple[bytes, bytes]]:
    """One 60-sample window per entry of `pattern` (constant vitals), a minute apart."""
    return [(patient.encode(), encode_vitals(VitalsWindow(
        event_id=f"{patient}-w{n}", patient_id=patient, device_id="monitor-1",
        start=start + timedelta(minutes=n), interval_s=1.0, values=[list(v) for _ in range(60)])))
        for n, v in enumerate(pattern)]


def recent_start(count: int) -> datetime:
    """A start time such that `count` one-minute windows end before now."""
    return datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=count + 1)


class Reader:
    """Reads a topic from the start, accumulating records across calls."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.records: list[tuple[bytes | None, bytes]] = []
        self._consumer = KafkaConsumer(topic, bootstrap_servers=settings.kafka_bootstrap,
                                       auto_offset_reset="earliest", enable_auto_commit=False,
                                       group_id=None)

    def poll(self) -> list[tuple[bytes | None, bytes]]:
        for batch in self._consumer.poll(timeout_ms=300).values():
            self.records += [(m.key, m.value) for m in batch]
        return self.records

    def close(self) -> None:
        self._consumer.close()


def results(reader: Reader, study: str) -> list[StudyResult]:
    return [decode_study_result(v) for k, v in reader.poll() if k == study.encode()]


def alerts(reader: Reader, patient: str) -> list[Alert]:
    return [a for a in (decode_alert(v) for _, v in reader.poll()) if a.patient_id == patient]


def wait(worker: Any, what: str, check: Callable[[], Any], timeout_s: float = 90) -> Any:
    """Poll until true (fails with the worker's log tail, or when it died)."""
    return worker.wait_until(what, check, timeout_s)
