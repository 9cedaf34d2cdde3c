"""The full-pipeline part of `medstream demo`: worker, real samples in, predictions out, live.

With the local stack up (medstream_tools.demo.command does that):
1. creates this run's topics (the four of the worker, the STAT topic of each kind, the study
   and delivery topics);
2. starts `medstream worker` as deployed by default, STAT lanes on (docs/lanes.md): a routine
   worker and the STAT worker, as child processes of one supervisor (its log:
   <state_dir>/demo-worker.log; medstream_tools.demo.supervisor);
3. replays real sample data: DICOM files from pydicom's test data (CT, MR, US, CR, ...) and
   vital-sign windows built from the MIT-BIH record 208 ECG excerpt in scipy (heart rate), plus
   one truncated message to show the dead-letter path. The brain MR is an urgent order
   (RequestedProcedurePriority STAT), so producers/priority.py publishes it on the STAT lane;
   everything else is routine. With study results and alerts enabled (docs/studies.md) it also
   sends a three-instance study and a deteriorating patient's vitals
   (medstream_tools.demo.studies);
4. prints predictions, skips (a scan no model is meant for: a CT, an MR of no declared body
   part, a secondary capture; docs/routing.md) and dead letters as they arrive, each with the
   lane it names (the lane that served it), then a summary (counts, p50/p95 latency, dead
   letters), one final result per study, the alerts, and per lane what was published, what
   that lane's worker served and how many outcomes name the lane (medstream_tools.demo.lanes);
   it stops the worker cleanly (SIGTERM, no process left). The stack keeps running;
5. delivers the study results and alerts to local peers (PACS, MLLP, FHIR) with
   `medstream deliver sr|hl7|fhir` (medstream_tools.demo.delivery).
"""

from __future__ import annotations

import io
import os
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pydicom
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic

from medstream_tools.demo import supervisor
from medstream_tools.demo.delivery import run_delivery
from medstream_tools.demo.lanes import (
    edge_settings,
    lane_env,
    output_lane,
    print_lanes,
    published,
    wait_served,
)
from medstream_tools.demo.samples import (
    DEMO_PATIENT,
    SAMPLE_SCANS,
    STAT_SAMPLE,
    demo_vitals,
    heart_rate_window,
    stat_request,
)
from medstream_tools.demo.studies import (
    ALERT_PATIENT,
    collect,
    deteriorating_windows,
    print_alerts,
    print_studies,
    study_env,
    study_instances,
)
from producers.priority import ROUTINE_PRIORITY, dicom_priority, publish_topic
from worker.contracts import Skip, decode_output
from worker.lanes import STAT
from worker.preprocess.vitals import WINDOW_LEN
from worker.settings import Settings
from worker.topics import create_topics

PIPELINE_SCANS = (*SAMPLE_SCANS, "JPEG2000.dcm", "US1_J2KR.dcm", "SC_rgb.dcm", "693_UNCR.dcm",
                  "MR2_UNCR.dcm", "test-SR.dcm")
ECG_SECONDS = 300  # length of the MIT-BIH 208 excerpt
RESULT_TIMEOUT_S = 120.0
INPUTS = ("scans", "vitals", "predictions", "deadletter")  # MEDSTREAM_TOPIC_* of the worker
OTHER_TOPICS = ("scans.stat", "vitals.stat", "studies", "alerts", "study-events",
                "alert-events", "delivery-deadletter")
BIG = ("scans", "scans.stat")  # topics that carry whole DICOM files


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
    """(file name, DICOM bytes) for the sample files present locally (no download); the
    STAT_SAMPLE as an urgent order."""
    from pydicom.data import get_testdata_file

    paths = [(name, get_testdata_file(name, download=False)) for name in PIPELINE_SCANS]
    files = [(name, Path(path).read_bytes()) for name, path in paths if path]
    return [(name, stat_request(data) if name == STAT_SAMPLE else data) for name, data in files]


def worker_env(settings: Settings, topics: dict[str, str]) -> dict[str, str]:
    """The worker's environment: this run's topics (STAT ones too), studies, its own group."""
    env = dict(os.environ)
    env.update({f"MEDSTREAM_TOPIC_{k.upper()}": v for k, v in topics.items() if k in INPUTS})
    env.update(study_env(topics))
    env.update(lane_env(topics))
    env.update({"MEDSTREAM_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
                "MEDSTREAM_TRITON_GRPC_URL": settings.triton_grpc_url,
                "MEDSTREAM_WEB_HOST": settings.web_host, "MEDSTREAM_WEB_PORT": str(settings.web_port),
                "MEDSTREAM_STATE_DIR": str(settings.state_dir)})
    env["MEDSTREAM_APP_ID"] = f"medstream-demo-{uuid.uuid4().hex[:8]}"
    return env


def publish(settings: Settings, topics: dict[str, str], names: dict[str, str],
            studies: dict[str, str]) -> list[str]:
    """Replay the samples, the study, the deteriorating windows and one truncated window, each
    on the topic the producers choose (producers/priority.py); returns the topic of each message.

    Fills `names` with SOPInstanceUID -> sample file name and `studies` with StudyInstanceUID ->
    sample file name, for the tables.
    """
    edge = edge_settings(settings, topics)
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all",
                             max_request_size=settings.max_message_bytes)
    windows = vitals_windows()
    scans = sample_scans() + study_instances(DEMO_PATIENT)
    messages = []
    for name, data in scans:
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
        topic = publish_topic(edge, edge.scan, dicom_priority(ds, edge.lanes.stat_rules),
                              lambda: None)  # publish_topic logs an unknown priority
        names[str(ds.SOPInstanceUID)] = name
        if "StudyInstanceUID" in ds:
            studies.setdefault(str(ds.StudyInstanceUID), name.split("#")[0])
        messages.append((topic, name.encode(), data))
    vitals = publish_topic(edge, edge.vitals, ROUTINE_PRIORITY, lambda: None)
    for patient, events in ((DEMO_PATIENT, windows), (ALERT_PATIENT, deteriorating_windows())):
        messages += [(vitals, patient.encode(), data) for _, data in events]
    messages.append((vitals, b"demo-truncated", windows[0][1][:80]))
    for fut in [producer.send(topic, key=key, value=value) for topic, key, value in messages]:
        fut.get(timeout=30)
    producer.close()
    return [topic for topic, _, _ in messages]


Row = tuple[str, str, str, str, float | None]  # kind, lane, event, result, latency ms


def describe(topic: str, topics: dict[str, str], key: bytes | None, value: bytes,
             headers: dict[str, bytes], names: dict[str, str]) -> Row:
    """(kind, lane, event, result, latency ms) for one output record; the lane it names."""
    if topic == topics["deadletter"]:
        return ("dead", output_lane(None, headers), (key or b"-").decode(errors="replace"),
                headers.get("error.type", b"?").decode(), None)
    p = decode_output(value)
    lane, event = output_lane(p, headers), names.get(p.event_id, p.event_id)[-28:]
    if isinstance(p, Skip):
        rule = f" ({p.rule['name']})" if p.rule else ""
        return "skip", lane, event, f"skipped: {p.reason}{rule}", p.latency_ms
    out = p.outputs
    if p.kind == "scan":
        result = f"{p.model} {out['label']} {out['score']:.3f}"
    else:
        result = f"risk {out['risk']:.3f}  next hr {out['forecast']['hr']:.1f}"
    return p.kind, lane, event, result, p.latency_ms


def watch(settings: Settings, topics: dict[str, str], total: int,
          names: dict[str, str]) -> list[Row]:
    """Print outputs as they arrive until `total` have come (or the timeout)."""
    consumer = KafkaConsumer(topics["predictions"], topics["deadletter"],
                             bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, group_id=None)
    print(f"\n{'#':>3}  {'kind':<6}  {'lane':<7}  {'event':<28}  {'result':<44}  latency")
    seen: list[Row] = []
    deadline = time.monotonic() + RESULT_TIMEOUT_S
    try:
        while len(seen) < total and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                for m in batch:
                    row = describe(m.topic, topics, m.key, m.value, dict(m.headers or []), names)
                    seen.append(row)
                    kind, lane, event, result, latency = row
                    shown = f"{latency:8.1f} ms" if latency is not None else "       -"
                    print(f"{len(seen):>3}  {kind:<6}  {lane:<7}  {event:<28}  {result:<44}  "
                          f"{shown}", flush=True)
    finally:
        consumer.close()
    return seen


def summary(seen: list[Row], total: int) -> None:
    """Counts per kind, latency percentiles, dead letters."""
    latencies = np.array([row[4] for row in seen if row[4] is not None])
    counts = {k: sum(1 for row in seen if row[0] == k) for k in ("scan", "vitals", "skip", "dead")}
    print(f"\nsummary: {len(seen)}/{total} inputs answered - {counts['scan']} scan and "
          f"{counts['vitals']} vitals predictions, {counts['skip']} scan(s) skipped (no model is "
          f"meant for them), {counts['dead']} dead letter(s)")
    if latencies.size:
        print(f"latency (Kafka timestamp -> prediction): p50 {np.percentile(latencies, 50):.1f} ms, "
              f"p95 {np.percentile(latencies, 95):.1f} ms")
    for kind, _, _, result, _ in seen:
        if kind == "dead":
            print(f"dead letter: reason {result}")


def stat_answered(seen: list[Row]) -> bool:
    """The STAT sample has a prediction that names the STAT lane; printed."""
    rows = [row for row in seen if row[0] == "scan" and row[2].split("#")[0] == STAT_SAMPLE]
    ok = bool(rows) and all(row[1] == STAT for row in rows)
    answer = rows[0][3] if rows else "no prediction"
    print(f"  STAT sample {STAT_SAMPLE} (RequestedProcedurePriority STAT): {answer} - "
          f"{'served by the STAT lane' if ok else 'NOT served by the STAT lane'}")
    return ok


def run_pipeline_demo(settings: Settings) -> int:
    """Steps 1-5 of the module docstring; returns the exit code."""
    run = uuid.uuid4().hex[:8]
    topics = {k: f"demo-{run}-{k}" for k in (*INPUTS, *OTHER_TOPICS)}
    configs = {**{k: {"max.message.bytes": str(settings.max_message_bytes)} for k in BIG},
               "studies": {"cleanup.policy": "compact"}}
    create_topics(settings.kafka_bootstrap, [
        NewTopic(name, settings.topic_partitions, 1, topic_configs=configs.get(k))
        for k, name in topics.items()])
    log_path = settings.state_dir / "demo-worker.log"
    ports = supervisor.web_ports(settings)
    print(f"starting the worker (STAT lanes on) on topics demo-{run}-* (log: {log_path}) ...")
    worker = supervisor.start(settings, worker_env(settings, topics), log_path)
    try:
        print("worker ready: " + ", ".join(f"{lane} worker http://{settings.web_host}:{port}/metrics"
                                           for lane, port in ports.items()))
        names: dict[str, str] = {}
        studies: dict[str, str] = {}
        sent = publish(settings, topics, names, studies)
        seen = watch(settings, topics, len(sent), names)
        summary(seen, len(sent))
        # Studies with a prediction get a result (skip-only studies are not counted yet)
        predicted = {row[2].split("#")[0] for row in seen if row[0] == "scan"}
        expected = {uid for uid, name in studies.items() if name in predicted}
        results, alerts = collect(settings, topics, expected, RESULT_TIMEOUT_S)
        print_studies(results, studies)
        print_alerts(alerts, settings.studies.alert_threshold)
        per_lane = published(topics, sent)
        lanes_ok = print_lanes(per_lane, wait_served(settings.web_host, ports, per_lane), ports,
                               Counter(row[1] for row in seen))
        lanes_ok &= stat_answered(seen)
    finally:
        code, clean = supervisor.stop(worker)
        print(f"worker stopped (exit {code}): "
              + ("supervisor, routine and STAT worker all exited" if clean
                 else "processes left behind were killed")
              + "; the stack keeps running: `medstream local down`")
    delivered = run_delivery(settings, topics, len(results), len(alerts))
    answered = len(seen) == len(sent) and expected <= results.keys()
    ok = answered and delivered and lanes_ok and clean and code == 0
    return 0 if ok and any(a.status == "raised" for a in alerts) else 1
