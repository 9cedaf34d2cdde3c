"""Study results and vitals alerts in `medstream demo`: the inputs that make them, the printout.

- a three-instance chest radiograph study (pydicom's RG1_UNCR.dcm re-identified into one
  StudyInstanceUID with fresh SOP Instance UIDs, the demo's pseudonym as PatientID);
- a deteriorating patient: one-minute windows of constant vitals, normal -> deteriorated ->
  normal again (NEWS2 0 -> 13 -> 0), so the alert is raised and then cleared.
"""

from __future__ import annotations

import io
import time
from datetime import UTC, datetime, timedelta

import pydicom
from kafka import KafkaConsumer
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from worker.contracts import (
    Alert,
    StudyResult,
    VitalsWindow,
    decode_alert,
    decode_study_result,
    encode_vitals,
)
from worker.settings import Settings, StudySettings

STUDY_SAMPLE, STUDY_INSTANCES = "RG1_UNCR.dcm", 3
ALERT_PATIENT = "PSN-" + "0" * 31 + "2"  # a pseudonym, the producers' form
NORMAL = [75, 98, 14, 120, 75, 37.0]  # hr, spo2, rr, sbp, dbp, temp: NEWS2 0
DETERIORATED = [125, 89, 28, 88, 55, 39.4]  # NEWS2 13
PATTERN = [NORMAL] * 2 + [DETERIORATED] * 4 + [NORMAL] * 4
# The worker's study/alert settings for the demo: short timers so results come within seconds
STUDY_ENV = {"enabled": "true", "quiet_s": "2", "tick_s": "0.5", "alert_consecutive": "3",
             "clear_consecutive": "3", "reorder_s": "1", "alert_repeat_s": "3600"}
STUDY_TOPICS = {"studies": "topic", "alerts": "alerts_topic", "study-events": "events_topic",
                "alert-events": "risk_topic"}  # demo topic suffix -> StudySettings field


def study_env(topics: dict[str, str]) -> dict[str, str]:
    """MEDSTREAM_STUDIES__* for the worker: the demo's study topics and short timers."""
    names = {**STUDY_ENV, **{field: topics[k] for k, field in STUDY_TOPICS.items()}}
    return {f"MEDSTREAM_STUDIES__{k.upper()}": v for k, v in names.items()}


def study_instances(patient: str) -> list[tuple[str, bytes]]:
    """(label, DICOM bytes) of one multi-instance study (one series)."""
    study, series = generate_uid(), generate_uid()
    out = []
    for n in range(STUDY_INSTANCES):
        ds = pydicom.dcmread(get_testdata_file(STUDY_SAMPLE, download=False))
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.PatientID = study, series, patient
        ds.InstanceNumber = n + 1
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        out.append((f"study-{STUDY_SAMPLE}#{n + 1}", buf.getvalue()))
    return out


def deteriorating_windows() -> list[tuple[str, bytes]]:
    """(event id, vitals message) per minute of PATTERN, all ending before now."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=len(PATTERN) + 1)
    return [(f"deteriorating-w{n:02d}", encode_vitals(VitalsWindow(
        event_id=f"deteriorating-w{n:02d}", patient_id=ALERT_PATIENT, device_id="demo-monitor-2",
        start=start + timedelta(minutes=n), interval_s=1.0, values=[list(v) for _ in range(60)])))
        for n, v in enumerate(PATTERN)]


def collect(settings: Settings, topics: dict[str, str], studies: set[str], timeout_s: float
            ) -> tuple[dict[str, StudyResult], list[Alert]]:
    """Final results of `studies` and the alert records, until all studies answered and the
    alert cleared (or the timeout)."""
    consumer = KafkaConsumer(topics["studies"], topics["alerts"], group_id=None,
                             bootstrap_servers=settings.kafka_bootstrap,
                             auto_offset_reset="earliest", enable_auto_commit=False)
    results: dict[str, StudyResult] = {}
    alerts: list[Alert] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and not (
                studies <= results.keys() and any(a.status == "cleared" for a in alerts)):
            for batch in consumer.poll(timeout_ms=500).values():
                for m in batch:
                    if m.topic == topics["alerts"]:
                        alerts.append(decode_alert(m.value))
                    elif (r := decode_study_result(m.value)).revision == 1:
                        results[r.study_uid] = r
    finally:
        consumer.close()
    return results, alerts


def print_studies(results: dict[str, StudyResult], names: dict[str, str]) -> None:
    """One line per study: status, counts, lanes served, per-model max probability (no identifiers)."""
    print(f"\nstudy results ({len(results)} studies, one final result each):")
    for uid, r in sorted(results.items(), key=lambda kv: names.get(kv[0], kv[0])):
        n = r.instances
        models = "; ".join(
            f"{m['model']} max " + ", ".join(f"{label}={p['max']:.3f}"
                                             for label, p in m["probabilities"].items())
            for m in r.models) or "no model"
        lanes = ", ".join(f"{lane} {count}" for lane, count in sorted(r.lanes.items())) or "-"
        print(f"  study {names.get(uid, '?'):<22} {r.status} ({r.completion}) instances "
              f"{n['total']}: {n['predicted']} predicted, {n['skipped']} skipped, "
              f"{n['dead_lettered']} dead (lanes: {lanes}) - {models}")


def print_alerts(alerts: list[Alert], threshold: float) -> None:
    """Each alert record of the deteriorating patient (the pseudonym is not printed)."""
    default = StudySettings.model_fields["alert_threshold"].default
    which = "the default threshold" if threshold == default else "a threshold set in the environment"
    print(f"\nvitals alerts (deteriorating patient; raised when risk >= {threshold}, {which}, "
          f"{STUDY_ENV['alert_consecutive']} windows in a row):")
    for a in alerts:
        print(f"  alert {a.status}: episode {a.episode}, risk {a.risk:.3f} (peak "
              f"{a.peak_risk:.3f}), NEWS2 {a.news2.get('score')} ({a.news2.get('band')})")
    if not alerts:
        print("  no alert raised")
