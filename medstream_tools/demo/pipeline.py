"""The full-pipeline part of `medstream demo`: worker, real samples in, predictions out, live.

With the local stack up (medstream_tools.demo.command does that):
1. creates this run's four topics;
2. starts `medstream worker` as a subprocess on them (its log: <state_dir>/demo-worker.log);
3. replays real sample data: DICOM files from pydicom's test data (CT, MR, US, CR, ...) and
   vital-sign windows built from the MIT-BIH record 208 ECG excerpt in scipy (heart rate), plus
   one truncated message to show the dead-letter path;
   With study results and alerts enabled (docs/studies.md) it also sends a three-instance
   study and a deteriorating patient's vitals (medstream_tools.demo.studies);
4. prints predictions, skips (a scan no model is meant for: a CT, an MR of no declared body
   part, a secondary capture; docs/routing.md) and dead letters as they arrive, then a summary
   (counts, p50/p95 latency, dead letters), one final result per study and the alerts, and
   stops the worker cleanly. The stack keeps running;
5. delivers the study results and alerts to local peers (PACS, MLLP, FHIR) with
   `medstream deliver sr|hl7|fhir` (medstream_tools.demo.delivery).
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pydicom
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic

from medstream_tools.demo.delivery import run_delivery
from medstream_tools.demo.samples import DEMO_PATIENT, SAMPLE_SCANS, demo_vitals, heart_rate_window
from medstream_tools.demo.studies import (
    ALERT_PATIENT,
    collect,
    deteriorating_windows,
    print_alerts,
    print_studies,
    study_env,
    study_instances,
)
from medstream_tools.localstack.process import StackError
from worker.contracts import Skip, decode_output
from worker.preprocess.vitals import WINDOW_LEN
from worker.settings import Settings
from worker.topics import create_topics

PIPELINE_SCANS = (*SAMPLE_SCANS, "JPEG2000.dcm", "US1_J2KR.dcm", "SC_rgb.dcm", "693_UNCR.dcm",
                  "MR2_UNCR.dcm", "test-SR.dcm")
ECG_SECONDS = 300  # length of the MIT-BIH 208 excerpt
READY_TIMEOUT_S = 90.0
RESULT_TIMEOUT_S = 120.0
INPUTS = ("scans", "vitals", "predictions", "deadletter")  # MEDSTREAM_TOPIC_* of the worker
OTHER_TOPICS = ("studies", "alerts", "study-events", "alert-events", "delivery-deadletter")


def vitals_windows(step_s: int = 30) -> list[tuple[str, bytes]]:
    """Sliding 60-s windows over the record (heart rate only; other channels missing)."""
    rows = heart_rate_window(ECG_SECONDS)
    start0 = datetime.now(UTC) - timedelta(seconds=ECG_SECONDS)
    out = []
    for offset in range(0, ECG_SECONDS - WINDOW_LEN + 1, step_s):
        event_id = f"mitbih208-{offset:03d}s"
        out.append((event_id, demo_vitals(event_id, start0 + timedelta(seconds=offset),
                                          rows[offset:offset + WINDOW_LEN])))
    return out


def sample_scans() -> list[tuple[str, bytes]]:
    """(file name, DICOM bytes) for the sample files present locally (no download)."""
    from pydicom.data import get_testdata_file

    paths = [(name, get_testdata_file(name, download=False)) for name in PIPELINE_SCANS]
    return [(name, Path(path).read_bytes()) for name, path in paths if path]


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return int(resp.status)
    except OSError:
        return 0


def start_worker(settings: Settings, topics: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """`medstream worker` on this run's topics; waits until /ready answers 200."""
    env = dict(os.environ)
    env.update({f"MEDSTREAM_TOPIC_{k.upper()}": v for k, v in topics.items() if k in INPUTS})
    env.update(study_env(topics))
    env.update({"MEDSTREAM_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
                "MEDSTREAM_TRITON_GRPC_URL": settings.triton_grpc_url,
                "MEDSTREAM_WEB_HOST": settings.web_host, "MEDSTREAM_WEB_PORT": str(settings.web_port),
                "MEDSTREAM_STATE_DIR": str(settings.state_dir)})
    env["MEDSTREAM_APP_ID"] = f"medstream-demo-{uuid.uuid4().hex[:8]}"
    env["MEDSTREAM_LANES__ENABLED"] = "false"  # one worker on this run's topics (docs/lanes.md)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "worker.cli", "worker"], env=env,
                                stdout=log, stderr=subprocess.STDOUT)
    url = f"http://{settings.web_host}:{settings.web_port}/ready"
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StackError(f"the worker exited with {proc.returncode}; see {log_path}")
        if _get(url) == 200:
            return proc
        time.sleep(0.3)
    proc.terminate()
    raise StackError(f"the worker was not ready within {READY_TIMEOUT_S:.0f}s; see {log_path}")


def publish(settings: Settings, topics: dict[str, str], names: dict[str, str],
            studies: dict[str, str]) -> int:
    """Replay the samples, the study, the deteriorating windows and one truncated window;
    returns how many messages were sent.

    Fills `names` with SOPInstanceUID -> sample file name and `studies` with
    StudyInstanceUID -> sample file name, for the tables.
    """
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all",
                             max_request_size=settings.max_message_bytes)
    windows = vitals_windows()
    scans = sample_scans() + study_instances(DEMO_PATIENT)
    for name, data in scans:
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
        names[str(ds.SOPInstanceUID)] = name
        if "StudyInstanceUID" in ds:
            studies.setdefault(str(ds.StudyInstanceUID), name.split("#")[0])
    messages = [(topics["scans"], name.encode(), data) for name, data in scans]
    messages += [(topics["vitals"], DEMO_PATIENT.encode(), data) for _, data in windows]
    messages += [(topics["vitals"], ALERT_PATIENT.encode(), data)
                 for _, data in deteriorating_windows()]
    messages.append((topics["vitals"], b"demo-truncated", windows[0][1][:80]))
    for fut in [producer.send(topic, key=key, value=value) for topic, key, value in messages]:
        fut.get(timeout=30)
    producer.close()
    return len(messages)


def describe(topic: str, topics: dict[str, str], key: bytes | None, value: bytes,
             headers: dict[str, bytes], names: dict[str, str]) -> tuple[str, str, str, float | None]:
    """(kind, event, result, latency ms) for one output record."""
    if topic == topics["deadletter"]:
        return "dead", (key or b"-").decode(errors="replace"), headers.get("error.type", b"?").decode(), None
    p = decode_output(value)
    if isinstance(p, Skip):
        rule = f" ({p.rule['name']})" if p.rule else ""
        return "skip", names.get(p.event_id, p.event_id)[-28:], f"skipped: {p.reason}{rule}", p.latency_ms
    out = p.outputs
    if p.kind == "scan":
        result = f"{p.model} {out['label']} {out['score']:.3f}"
    else:
        result = f"risk {out['risk']:.3f}  next hr {out['forecast']['hr']:.1f}"
    return p.kind, names.get(p.event_id, p.event_id)[-28:], result, p.latency_ms


def watch(settings: Settings, topics: dict[str, str], total: int, names: dict[str, str],
          predicted: set[str]) -> list[tuple[str, str, float | None]]:
    """Print outputs as they arrive until `total` have come (or the timeout); adds the sample
    name of each scan prediction to `predicted`."""
    consumer = KafkaConsumer(topics["predictions"], topics["deadletter"],
                             bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, group_id=None)
    print(f"\n{'#':>3}  {'kind':<6}  {'event':<28}  {'result':<44}  latency")
    seen: list[tuple[str, str, float | None]] = []
    deadline = time.monotonic() + RESULT_TIMEOUT_S
    try:
        while len(seen) < total and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                for m in batch:
                    kind, event, result, latency = describe(m.topic, topics, m.key, m.value,
                                                            dict(m.headers or []), names)
                    seen.append((kind, result, latency))
                    if kind == "scan":
                        predicted.add(event.split("#")[0])
                    shown = f"{latency:8.1f} ms" if latency is not None else "       -"
                    print(f"{len(seen):>3}  {kind:<6}  {event:<28}  {result:<44}  {shown}", flush=True)
    finally:
        consumer.close()
    return seen


def summary(seen: list[tuple[str, str, float | None]], total: int) -> None:
    """Counts per kind, latency percentiles, dead letters."""
    latencies = np.array([lat for _, _, lat in seen if lat is not None])
    counts = {k: sum(1 for kind, _, _ in seen if kind == k) for k in ("scan", "vitals", "skip", "dead")}
    print(f"\nsummary: {len(seen)}/{total} inputs answered - {counts['scan']} scan and "
          f"{counts['vitals']} vitals predictions, {counts['skip']} scan(s) skipped (no model is "
          f"meant for them), {counts['dead']} dead letter(s)")
    if latencies.size:
        print(f"latency (Kafka timestamp -> prediction): p50 {np.percentile(latencies, 50):.1f} ms, "
              f"p95 {np.percentile(latencies, 95):.1f} ms")
    for kind, result, _ in seen:
        if kind == "dead":
            print(f"dead letter: reason {result}")


def run_pipeline_demo(settings: Settings) -> int:
    """Steps 1-4 of the module docstring; returns the exit code."""
    run = uuid.uuid4().hex[:8]
    topics = {k: f"demo-{run}-{k}" for k in (*INPUTS, *OTHER_TOPICS)}
    configs = {"scans": {"max.message.bytes": str(settings.max_message_bytes)},
               "studies": {"cleanup.policy": "compact"}}
    create_topics(settings.kafka_bootstrap, [
        NewTopic(name, settings.topic_partitions, 1, topic_configs=configs.get(k))
        for k, name in topics.items()])
    log_path = settings.state_dir / "demo-worker.log"
    print(f"starting the worker on topics demo-{run}-* (log: {log_path}) ...")
    worker = start_worker(settings, topics, log_path)
    try:
        print(f"worker ready: http://{settings.web_host}:{settings.web_port}/metrics")
        names: dict[str, str] = {}
        studies: dict[str, str] = {}
        total = publish(settings, topics, names, studies)
        predicted: set[str] = set()
        seen = watch(settings, topics, total, names, predicted)
        summary(seen, total)
        # Studies with a prediction get a result (skip-only studies are not counted yet)
        expected = {uid for uid, name in studies.items() if name in predicted}
        results, alerts = collect(settings, topics, expected, RESULT_TIMEOUT_S)
        print_studies(results, studies)
        print_alerts(alerts, settings.studies.alert_threshold)
    finally:
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=30)
        print(f"worker stopped (exit {code}); the stack keeps running: `medstream local down`")
    delivered = run_delivery(settings, topics, len(results), len(alerts))
    answered = len(seen) == total and expected <= results.keys()
    return 0 if answered and delivered and any(a.status == "raised" for a in alerts) else 1
