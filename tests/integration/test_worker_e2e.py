"""End to end through the real broker and Triton: scans for two models and for none + vitals
windows -> predictions and skips, all on the predictions topic."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.support.harness import (
    Topics,
    collect,
    dicom_scans,
    keys,
    mixed_scans,
    publish,
    vitals_window,
)
from tests.support.harness import TopicsWorker as WorkerProcess
from worker.contracts import (
    CHANNELS,
    PREDICTION_SCHEMA,
    SKIP_SCHEMA,
    ScanEnvelope,
    encode_scan_envelope,
)
from worker.settings import Settings

pytestmark = pytest.mark.integration


def test_scans_and_vital_windows_become_predictions(settings: Settings, topic_factory, tmp_path: Path) -> None:
    topics = Topics.create(topic_factory)
    claims = tmp_path / "claims"
    claims.mkdir()
    worker = WorkerProcess(settings, topics, tmp_path / "worker", brain="brain_mri_tumour",
                           extra_env={"MEDSTREAM_SCAN_URI_ROOT": str(claims)}).start()
    try:
        worker.wait_ready()
        scans = mixed_scans(8)  # one batch: rows for scan_cnn and brain_mri_tumour, and skips
        (claim_uid, claim_bytes), = dicom_scans(1, patient="pseudo-claim")
        (claims / "big.dcm").write_bytes(claim_bytes)
        envelope = encode_scan_envelope(ScanEnvelope("claim-1", "big.dcm"))
        publish(settings, topics.scans, [(b"study-1", data) for _, data, _ in scans]
                + [(b"study-2", envelope)])
        windows = {f"v-{i}": vitals_window(f"v-{i}", rows=30 + i, seed=i) for i in range(20)}
        publish(settings, topics.vitals, [(f"pseudo-{i}".encode(), w) for i, w in enumerate(windows.values())])

        expected = {uid.encode() for uid, _, _ in scans} | {b"claim-1"} | {k.encode() for k in windows}
        outputs = collect(settings, topics, lambda o: keys(o, topics.predictions) >= expected, 45, worker)
        predictions = {o.key: o.json() for o in outputs if o.topic == topics.predictions}
        assert set(predictions) == expected
        assert keys(outputs, topics.deadletter) == set()

        for uid, _, outcome in scans:
            p = predictions[uid.encode()]
            assert p["event_id"] == p["sop_uid"] == uid and p["patient_id"] == "pseudo-scan"
            if outcome == "skipped":  # CT, US: no model is meant for them
                assert (p["schema"], p["kind"], p["outcome"], p["reason"]) == (
                    SKIP_SCHEMA, "scan", "skipped", "rule")
                assert p["attributes"]["Modality"] in ("CT", "US") and "outputs" not in p
                continue
            assert (p["schema"], p["kind"], p["model"]) == (PREDICTION_SCHEMA, "scan", outcome)
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

        assert worker.metric("medstream_messages_consumed_total", {"kind": "scan"}) == 9
        assert worker.metric("medstream_skipped_total", {"kind": "scan", "reason": "rule"}) == 2
        for model in ("scan_cnn", "brain_mri_tumour"):
            assert worker.metric("medstream_batch_size_count", {"model": model}) >= 1
        assert worker.metric("medstream_predictions_total", {"kind": "vitals"}) == 20
        assert worker.metric("medstream_batch_size_count", {"model": "vitals_lstm"}) >= 1
        assert worker.metric("medstream_ready") == 1
        assert worker.get("/health")[0] == 200
    finally:
        worker.stop()
    assert worker.proc is not None and worker.proc.returncode == 0, worker.log_tail()
