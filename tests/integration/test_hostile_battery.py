"""The hostile battery of issue 12 against the real broker, the real Triton and the real worker:
every reproduction that used to crash-loop the worker or give a confident answer to clinical
nonsense ends as exactly one prediction or dead letter with the expected reason, and the same
worker process stays alive and ready after each group."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from tests.support.harness import Output, Topics, collect, publish, vitals_window
from tests.support.harness import TopicsWorker as WorkerProcess
from worker.contracts import ScanEnvelope, decode_deadletter_stub, encode_scan_envelope
from worker.settings import Settings

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
WORKER_REQUEST_BYTES = 4 * MIB  # the worker's producer: a 12 MB dead letter cannot go whole
BIG_DICOM_BYTES = 12_000_000


def deidentified_scan() -> tuple[str, bytes]:
    """A real CT as the producers publish it: pseudonymous, declaring its de-identification."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.PatientID = ds.PatientName = "PSN-" + "5" * 32
    ds.PatientIdentityRemoved, ds.DeidentificationMethod = "YES", "medstream test fixture"
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return str(ds.SOPInstanceUID), buf.getvalue()


def big_dicom() -> bytes:
    """A real CT header with 12 MB of pixel data (3000 x 2000, 16 bit)."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.Rows, ds.Columns = 3000, 2000
    ds.PixelData = np.zeros(BIG_DICOM_BYTES // 2, np.uint16).tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def digest(value: bytes) -> str:
    return hashlib.sha256(value).hexdigest()


def window(event_id: str, seed: int = 0, **overrides: object) -> bytes:
    return vitals_window(event_id, seed=seed, **overrides)


def answers(outputs: list[Output], topics: Topics, inputs: dict[bytes, bytes]) -> dict[bytes, list[Output]]:
    """For each input (name -> published value), the outputs that answer it: predictions by
    their input digest, dead letters by their original value or, bounded, its digest."""
    by_digest = {digest(value): name for name, value in inputs.items()}
    found: dict[bytes, list[Output]] = {name: [] for name in inputs}
    for out in outputs:
        if out.topic == topics.predictions:
            name = by_digest.get(out.json()["input_digest"].removeprefix("sha256:"))
        elif "original.value.sha256" in out.headers:
            name = by_digest.get(out.headers["original.value.sha256"].decode())
        else:
            name = by_digest.get(digest(out.value))
        if name is not None:
            found[name].append(out)
    return found


def serve_group(settings: Settings, topics: Topics, worker: WorkerProcess, topic: str,
                inputs: dict[bytes, bytes], key: Callable[[bytes], bytes] = lambda name: name
                ) -> dict[bytes, Output]:
    """Publish `inputs` (name -> value, keyed by `key(name)`), wait for one answer each, and
    check that the same worker process is still alive and ready."""
    publish(settings, topic, [(key(name), value) for name, value in inputs.items()])

    def done(outputs: list[Output]) -> bool:
        return all(answers(outputs, topics, inputs).values())

    found = answers(collect(settings, topics, done, 120, worker), topics, inputs)
    assert {name: len(outs) for name, outs in found.items()} == dict.fromkeys(inputs, 1)
    worker.wait_ready(60)
    worker.assert_alive()
    assert worker.starts == 1
    return {name: outs[0] for name, outs in found.items()}


def reason(out: Output) -> str:
    return out.headers["error.type"].decode() if "error.type" in out.headers else "prediction"


def test_hostile_inputs_end_as_one_answer_each_and_the_worker_stays_up(
        settings: Settings, topic_factory, tmp_path: Path) -> None:
    big = {"max.message.bytes": str(16 * MIB)}
    topics = Topics(topic_factory("scans", 2, big), topic_factory("vitals", 2),
                    topic_factory("predictions", 2), topic_factory("deadletter", 2))
    worker = WorkerProcess(settings, topics, tmp_path / "worker", extra_env={
        "MEDSTREAM_PRODUCER_MAX_REQUEST_SIZE": str(WORKER_REQUEST_BYTES),
        "MEDSTREAM_REQUIRE_DEIDENTIFIED": "true"}).start()
    try:
        worker.wait_ready()
        spike = json.loads(window("spike", seed=3))
        spike["values"][5][0] = 1e308  # one overflowed HR value among plausible ones
        vitals = {
            b"good": window("good"),
            b"interval-1e300": window("iv", interval_s=1e300),
            b"year-9999": window("y9", start="9999-12-31T23:59:30Z"),
            b"lone-surrogate": window("p-\ud800"),
            b"all-1e308": window("huge", values=[[1e308] * 6] * 60),
            b"hr-minus-50": window("neg", values=[[-50, 97, 16, 120, 75, 37.0]] * 60),
            b"clear-patient-id": window("clear", patient_id="MRN-0012345"),
            b"spike": json.dumps(spike).encode(),
        }
        out = serve_group(settings, topics, worker, topics.vitals, vitals)
        assert {name: reason(o) for name, o in out.items()} == {
            b"good": "prediction", b"interval-1e300": "schema", b"year-9999": "schema",
            b"lone-surrogate": "schema", b"all-1e308": "implausible", b"hr-minus-50": "implausible",
            b"clear-patient-id": "not_deidentified", b"spike": "prediction"}
        assert out[b"spike"].json()["quality"]["implausible"]["hr"] == 1
        assert out[b"good"].json()["quality"]["implausible"] == dict.fromkeys(
            ("hr", "spo2", "rr", "sbp", "dbp", "temp"), 0)
        for name, o in out.items():
            if reason(o) != "prediction":
                assert o.key == name and o.value == vitals[name]  # whole, with its original key
        assert worker.metric("medstream_implausible_values_total", {"channel": "hr"}) == 1

        # one event id, two different windows (same key: same partition, consumed in order)
        duplicates = {b"first": window("dup", seed=1), b"second": window("dup", seed=2)}
        out = serve_group(settings, topics, worker, topics.vitals, duplicates, key=lambda _: b"dup")
        first, second = out[b"first"].json(), out[b"second"].json()
        assert out[b"first"].key == out[b"second"].key == b"dup"
        assert first["input_digest"] != second["input_digest"]
        assert "event_id_conflict" not in first and second["event_id_conflict"] is True
        assert worker.metric("medstream_event_id_conflicts_total", {"kind": "vitals"}) == 1

        uid, good_scan = deidentified_scan()
        huge = big_dicom()
        assert len(huge) > BIG_DICOM_BYTES
        scans = {
            b"good-scan": good_scan,
            b"envelope-lone-surrogate": encode_scan_envelope(ScanEnvelope("s-\ud800", "/x.dcm")),
            b"dicom-12mb": huge,
        }
        out = serve_group(settings, topics, worker, topics.scans, scans)
        assert {name: reason(o) for name, o in out.items()} == {
            b"good-scan": "prediction", b"envelope-lone-surrogate": "schema", b"dicom-12mb": "oversize"}
        assert out[b"good-scan"].json()["sop_uid"] == uid
        bounded = out[b"dicom-12mb"]
        assert bounded.key == b"dicom-12mb" and len(bounded.value) < 4096
        stub = decode_deadletter_stub(bounded.value)
        assert stub["value"] == {"bytes": len(huge), "sha256": digest(huge)}
        assert stub["source"]["topic"] == topics.scans and stub["reason"] == "oversize"
        assert bounded.headers["source.offset"] and bounded.headers["original.value.bytes"] == str(len(huge)).encode()
        assert worker.metric("medstream_deadletters_bounded_total", {"kind": "scan"}) == 1

        log = worker.log_tail(2000)
        assert "MRN-0012345" not in log
    finally:
        worker.stop()
