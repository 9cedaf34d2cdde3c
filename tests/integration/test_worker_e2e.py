"""End to end through the real broker and Triton: scans + vitals windows -> predictions."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.support.harness import Topics, collect, dicom_scans, keys, publish, vitals_window
from tests.support.harness import TopicsWorker as WorkerProcess
from worker.contracts import CHANNELS, PREDICTION_SCHEMA, ScanEnvelope, encode_scan_envelope
from worker.settings import Settings

pytestmark = pytest.mark.integration


def test_scans_and_vital_windows_become_predictions(settings: Settings, topic_factory, tmp_path: Path) -> None:
    topics = Topics.create(topic_factory)
    claims = tmp_path / "claims"
    claims.mkdir()
    worker = WorkerProcess(settings, topics, tmp_path / "worker",
                           extra_env={"MEDSTREAM_SCAN_URI_ROOT": str(claims)}).start()
    try:
        worker.wait_ready()
        scans = dicom_scans(6)
        (claim_uid, claim_bytes), = dicom_scans(1, patient="pseudo-claim")
        (claims / "big.dcm").write_bytes(claim_bytes)
        envelope = encode_scan_envelope(ScanEnvelope("claim-1", "big.dcm"))
        publish(settings, topics.scans, [(b"study-1", data) for _, data in scans]
                + [(b"study-2", envelope)])
        windows = {f"v-{i}": vitals_window(f"v-{i}", rows=30 + i, seed=i) for i in range(20)}
        publish(settings, topics.vitals, [(f"pseudo-{i}".encode(), w) for i, w in enumerate(windows.values())])

        expected = {uid.encode() for uid, _ in scans} | {b"claim-1"} | {k.encode() for k in windows}
        outputs = collect(settings, topics, lambda o: keys(o, topics.predictions) >= expected, 45, worker)
        predictions = {o.key: o.json() for o in outputs if o.topic == topics.predictions}
        assert set(predictions) == expected
        assert keys(outputs, topics.deadletter) == set()

        for uid, _ in scans:
            p = predictions[uid.encode()]
            assert (p["schema"], p["kind"], p["model"]) == (PREDICTION_SCHEMA, "scan", "scan_cnn")
            assert p["event_id"] == p["sop_uid"] == uid and p["patient_id"] == "pseudo-scan"
            assert p["model_version"].startswith("1")
            probs = p["outputs"]["probabilities"]
            assert sum(probs.values()) == pytest.approx(1.0, abs=1e-3)
            assert p["outputs"]["label"] == max(probs, key=probs.get)
            assert p["latency_ms"] >= 0
        claim = predictions[b"claim-1"]
        assert claim["sop_uid"] == claim_uid and claim["patient_id"] == "pseudo-claim"

        for event_id, raw in windows.items():
            p, w = predictions[event_id.encode()], json.loads(raw)
            assert (p["kind"], p["model"], p["patient_id"]) == ("vitals", "vitals_lstm", w["patient_id"])
            assert 0.0 <= p["outputs"]["risk"] <= 1.0
            assert set(p["outputs"]["forecast"]) == set(CHANNELS)
            end = datetime.fromisoformat(w["start"]) + timedelta(seconds=len(w["values"]) - 1)
            assert datetime.fromisoformat(p["event_time"]) == pytest.approx(
                end, abs=timedelta(milliseconds=1))

        assert worker.metric("medstream_messages_consumed_total", {"kind": "scan"}) == 7
        assert worker.metric("medstream_predictions_total", {"kind": "vitals"}) == 20
        assert worker.metric("medstream_batch_size_count", {"model": "vitals_lstm"}) >= 1
        assert worker.metric("medstream_ready") == 1
        assert worker.get("/health")[0] == 200
    finally:
        worker.stop()
    assert worker.proc is not None and worker.proc.returncode == 0, worker.log_tail()
