"""`medstream deliver` processes end to end: results on the real broker, the three targets
against real peers, counted at the receivers.

- kill -9 of each delivery process mid-stream, restart: every result arrives, nothing is
  created twice (FHIR conditional create, HL7 MSH-10, SR SOP Instance UID);
- a target down: /ready names it and nothing is committed; back up: delivered; a refused
  resource goes to the delivery dead-letter topic with the target's error.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer

from medstream_tools.ports import free_port
from medstream_tools.soak.waiting import wait_for
from tests.integration.delivery_peers import FhirPeer, MllpPeer, StoreScp
from worker.contracts.alert import Alert, encode_alert
from worker.contracts.study import StudyResult, encode_study_result
from worker.settings import Settings

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)


def study(i: int, patient: str = "PSN-0123456789abcdef0123456789abcdef") -> StudyResult:
    """Study i: final, one model, two classes."""
    model = {"model": "scan_cnn", "model_version": "1+sha256.0123456789ab", "instances": 2,
             "probabilities": {"normal": {"max": 0.3, "mean": 0.2},
                               "pneumonia": {"max": 0.8, "mean": 0.6}}, "top": {}}
    return StudyResult(
        study_uid=f"2.25.{1000 + i}", revision=1, completion="quiet", complete=True,
        patient_id=patient, instances={"total": 2, "predicted": 2, "skipped": 0,
                                       "dead_lettered": 0},
        series=[], models=[model], reasons={}, anomalies={}, missing_required=[],
        study_time=T0, first_seen=T0, last_seen=T0, produced_at=T0 + timedelta(minutes=1))


def alert(i: int) -> Alert:
    """Alert i: a raised episode of its own patient."""
    return Alert(patient_id=f"PSN-{i:032x}", episode=1, raised_at=T0, seq=0, status="raised",
                 risk=0.8, peak_risk=0.8, event_id=f"e{i}", event_time=T0,
                 news2={"score": 5, "band": "medium", "subscores": {"rr": 2, "hr": 3},
                        "missing": []},
                 model="vitals_lstm", model_version="1+x", produced_at=T0)


@pytest.fixture
def topics(topic_factory: Callable[..., str]) -> dict[str, str]:
    return {"studies": topic_factory("studies", partitions=2), "alerts": topic_factory("alerts"),
            "deadletter": topic_factory("delivery-deadletter")}


def _publish(settings: Settings, records: list[tuple[str, bytes, bytes]]) -> None:
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    for topic, key, value in records:
        producer.send(topic, key=key, value=value)
    producer.flush(timeout=60)
    producer.close()


@pytest.fixture
def deliver(settings: Settings, topics: dict[str, str], tmp_path: Path
            ) -> Iterator[Callable[..., subprocess.Popen]]:
    """Start `medstream deliver TARGET` with extra environment; killed at the end."""
    procs: list[subprocess.Popen] = []
    group = f"deliver-test-{uuid.uuid4().hex[:8]}"

    def start(target: str, env: dict[str, str]) -> subprocess.Popen:
        log = open(tmp_path / f"deliver-{target}-{len(procs)}.log", "w")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "worker.cli", "deliver", target], cwd=ROOT,
            stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT),
                 "MEDSTREAM_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
                 "MEDSTREAM_DELIVERY__STUDIES_TOPIC": topics["studies"],
                 "MEDSTREAM_DELIVERY__ALERTS_TOPIC": topics["alerts"],
                 "MEDSTREAM_DELIVERY__DEADLETTER_TOPIC": topics["deadletter"],
                 "MEDSTREAM_DELIVERY__GROUP_PREFIX": group,
                 "MEDSTREAM_DELIVERY__RETRY_INITIAL_S": "0.2",
                 "MEDSTREAM_DELIVERY__RETRY_MAX_S": "1", **env})
        log.close()
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


def _logs(tmp_path: Path) -> str:
    return "\n".join(p.read_text()[-2000:] for p in sorted(tmp_path.glob("deliver-*.log")))


def _ready(port: int) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
    except OSError:
        return 0, {}


def _deadletters(settings: Settings, topic: str, expected: int) -> list[dict[str, bytes]]:
    consumer = KafkaConsumer(topic, bootstrap_servers=settings.kafka_bootstrap,
                             auto_offset_reset="earliest", consumer_timeout_ms=3000)
    found: list[dict[str, bytes]] = []
    wait_for(f"{expected} dead letters", lambda: found.extend(
        dict(r.headers) for r in consumer) or len(found) >= expected, timeout_s=60)
    consumer.close()
    return found


def test_kill_9_mid_stream_loses_and_duplicates_nothing_at_the_receivers(
        settings: Settings, topics: dict[str, str], deliver: Callable[..., subprocess.Popen],
        tmp_path: Path) -> None:
    n_studies, n_alerts = 24, 6
    fhir = FhirPeer(free_port(), token="t0ken", delay_s=0.15).start()
    mllp = MllpPeer(free_port(), delay_s=0.1).start()
    pacs = StoreScp(tmp_path / "pacs", free_port(), delay_s=0.2).start()
    try:
        _publish(settings, [(topics["studies"], s.study_uid.encode(), encode_study_result(s))
                            for s in map(study, range(n_studies))]
                 + [(topics["alerts"], a.alert_id.encode(), encode_alert(a))
                    for a in map(alert, range(n_alerts))]
                 + [(topics["studies"], b"garbage", b"not a study result")])
        env = {"fhir": {"MEDSTREAM_FHIR__BASE_URL": fhir.url, "MEDSTREAM_FHIR__BEARER_TOKEN": "t0ken"},
               "hl7": {"MEDSTREAM_MLLP__PORT": str(mllp.port)},
               "sr": {"MEDSTREAM_PACS__PORT": str(pacs.port)}}
        counted = {"fhir": lambda: fhir.count("DiagnosticReport") + fhir.count("RiskAssessment"),
                   "hl7": mllp.distinct, "sr": lambda: len(pacs.files())}
        total = {"fhir": n_studies + n_alerts, "hl7": n_studies + n_alerts, "sr": n_studies}
        procs = {t: deliver(t, {**e, "MEDSTREAM_DELIVERY__WEB_PORT": "0"}) for t, e in env.items()}
        for target, proc in procs.items():
            wait_for(f"{target} delivering", lambda t=target: counted[t]() >= 4, timeout_s=120,
                     detail=lambda: _logs(tmp_path))
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            assert counted[target]() < total[target], "killed after the stream ended"
            deliver(target, {**env[target], "MEDSTREAM_DELIVERY__WEB_PORT": "0"})
        for target in procs:
            wait_for(f"every result at {target}", lambda t=target: counted[t]() == total[t],
                     timeout_s=180, detail=lambda: _logs(tmp_path))
        # nothing created twice: one creation per stored resource, repeats answered 200
        stored = sum(fhir.count(k) for k in ("Device", "DiagnosticReport", "Observation",
                                             "RiskAssessment"))
        assert fhir.answers["201-entry"] == stored
        assert fhir.count("DiagnosticReport") == n_studies
        assert fhir.count("RiskAssessment") == fhir.count("Observation") - 2 * n_studies == n_alerts
        assert mllp.refused == [] and mllp.distinct() == n_studies + n_alerts
        assert len(pacs.files()) == n_studies
        letters = _deadletters(settings, topics["deadletter"], 3)
        assert {(h["target"], h["error.type"]) for h in letters} == {
            (b"fhir", b"undecodable"), (b"hl7", b"undecodable"), (b"sr", b"undecodable")}
        print(f"FHIR 201/200 entries {fhir.answers['201-entry']}/{fhir.answers['200-entry']}, "
              f"ORU received {len(mllp.received)} (distinct {mllp.distinct()}), "
              f"C-STORE receptions {pacs.receptions()} (files {len(pacs.files())})")
    finally:
        fhir.stop()
        mllp.stop()
        pacs.stop()


def test_a_target_down_blocks_readiness_then_delivers_and_a_refusal_is_dead_lettered(
        settings: Settings, topics: dict[str, str], deliver: Callable[..., subprocess.Popen],
        tmp_path: Path) -> None:
    fhir = FhirPeer(free_port())
    fhir.mode, fhir.refuse_subject = "down", "PSN-refused"
    fhir.start()
    port = free_port()
    try:
        results = [study(0, patient="PSN-refused"), study(1), study(2)]
        _publish(settings, [(topics["studies"], s.study_uid.encode(), encode_study_result(s))
                            for s in results])
        proc = deliver("fhir", {"MEDSTREAM_FHIR__BASE_URL": fhir.url,
                                "MEDSTREAM_DELIVERY__WEB_PORT": str(port)})

        def blocked() -> bool:
            status, body = _ready(port)
            return status == 503 and "target:fhir" in body.get("blockers", [])

        wait_for("/ready naming the blocked target", blocked, timeout_s=120,
                 detail=lambda: _logs(tmp_path))
        assert fhir.count("DiagnosticReport") == 0 and fhir.answers["503"] >= 1
        fhir.mode = "ok"
        wait_for("two reports", lambda: fhir.count("DiagnosticReport") == 2, timeout_s=120,
                 detail=lambda: _logs(tmp_path))
        wait_for("/ready 200", lambda: _ready(port)[0] == 200, timeout_s=60)
        (letter,) = _deadletters(settings, topics["deadletter"], 1)
        assert letter["error.type"] == b"target_rejected" and letter["target"] == b"fhir"
        assert letter["error.message"] == b"HTTP 422: resource refused by local policy"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            metrics = answer.read().decode()
        assert 'medstream_delivery_delivered_total{target="fhir"} 2.0' in metrics
        assert 'medstream_delivery_rejected_total{reason="target_rejected",target="fhir"} 1.0' \
            in metrics
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, _logs(tmp_path)
    finally:
        fhir.stop()
