"""Contracts and scan input: decode/validate inputs, encode outputs, distinct poison reasons."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from tests.support.routing import prepare_routed
from worker.contracts import (
    InputRecord,
    Prediction,
    check_size,
    deadletter_headers,
    decode_vitals,
    encode_prediction,
)
from worker.errors import DeadLetterReason, PoisonMessage
from worker.scan_input import ClaimCheckPolicy, dicom_event_time, resolve_uri

CT = Path(get_testdata_file("CT_small.dcm"))


def window(**overrides: object) -> dict:
    body = {
        "schema": "medstream.vitals/v1", "event_id": "w-1", "patient_id": "pseudo-1",
        "device_id": "mon-7", "start": "2026-01-02T03:04:05Z", "interval_s": 60,
        "channels": ["hr", "spo2", "rr", "sbp", "dbp", "temp"],
        "values": [[80, 97, 16, 120, 80, 37.0], [82, None, 17, 121, 79, 37.1]],
    }
    body.update(overrides)
    return body


def encoded(body: dict) -> bytes:
    return json.dumps(body).encode()


def reason(fn, *args) -> str:
    with pytest.raises(PoisonMessage) as info:
        fn(*args)
    return info.value.reason


def test_vitals_window_decodes_with_utc_times() -> None:
    w = decode_vitals(encoded(window()))
    assert (w.event_id, w.patient_id, w.device_id, w.interval_s) == ("w-1", "pseudo-1", "mon-7", 60.0)
    assert w.start == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert w.end_time == datetime(2026, 1, 2, 3, 5, 5, tzinfo=UTC)
    assert w.values[1] == [82, None, 17, 121, 79, 37.1]


def test_vitals_channels_are_reordered_and_absent_ones_missing() -> None:
    w = decode_vitals(encoded(window(channels=["spo2", "hr"], values=[[97, 80]])))
    assert w.values == [[80, 97, None, None, None, None]]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b'{"schema": "medstream.vitals/v1", "event_', "json_decode"),
        (b"\xff\xfe", "json_decode"),
        (b"[1, 2]", "json_decode"),
        (encoded(window(schema="medstream.vitals/v2")), "schema_version"),
        (encoded(window(schema="something/v1")), "schema"),
        (encoded({k: v for k, v in window().items() if k != "schema"}), "schema"),
        (encoded(window(event_id="")), "schema"),
        (encoded(window(start="2026-01-02T03:04:05")), "schema"),
        (encoded(window(start="yesterday")), "schema"),
        (encoded(window(interval_s=0)), "schema"),
        (encoded(window(interval_s=True)), "schema"),
        (encoded(window(channels=["hr", "hr"])), "schema"),
        (encoded(window(channels=["hr", "glucose"])), "schema"),
        (encoded(window(values=[[80, 97, 16]])), "shape"),
        (encoded(window(values=[])), "shape"),
        (encoded(window(values="80,97")), "shape"),
    ],
)
def test_invalid_vitals_have_distinct_reasons(value: bytes, expected: str) -> None:
    assert reason(decode_vitals, value) == expected


def test_size_is_checked_before_decoding() -> None:
    check_size(b"x" * 10, 10)
    assert reason(check_size, b"x" * 11, 10) == "oversize"


def test_prediction_encodes_to_versioned_json() -> None:
    t = datetime(2026, 1, 2, 3, 4, 5, 123000, tzinfo=UTC)
    pred = Prediction("e-1", "scan", "p", "scan_cnn", "1+sha256.ab", {"label": "normal"}, t, t, 12.3456,
                      extra={"sop_uid": "1.2", "study_uid": "1.2.3"})
    body = json.loads(encode_prediction(pred))
    assert body == {
        "schema": "medstream.prediction/v1", "event_id": "e-1", "kind": "scan", "patient_id": "p",
        "sop_uid": "1.2", "study_uid": "1.2.3", "model": "scan_cnn", "model_version": "1+sha256.ab",
        "outputs": {"label": "normal"}, "event_time": "2026-01-02T03:04:05.123Z",
        "produced_at": "2026-01-02T03:04:05.123Z", "latency_ms": 12.346,
    }
    nan = Prediction("e", "scan", None, "m", "1", {"x": float("nan")}, t, t, 0.0)
    with pytest.raises(ValueError):
        encode_prediction(nan)


def test_deadletter_headers_keep_original_ones() -> None:
    record = InputRecord("scans", 3, 42, b"k", b"v", 0.0, (("content-type", b"application/dicom"),
                                                           ("error.type", b"spoofed")))
    headers = dict(deadletter_headers(record, PoisonMessage(DeadLetterReason.JSON_DECODE, "bad"), "w-1"))
    assert headers == {
        "content-type": b"application/dicom", "error.type": b"json_decode", "error.message": b"bad",
        "source.topic": b"scans", "source.partition": b"3", "source.offset": b"42", "worker.id": b"w-1",
    }


# --- scans -------------------------------------------------------------------------------------

def test_raw_dicom_is_keyed_by_sop_instance_uid() -> None:
    meta, tensor = prepare_routed(CT.read_bytes(), ClaimCheckPolicy(None, 10**8))
    ds = pydicom.dcmread(CT)
    assert meta.event_id == meta.sop_uid == ds.SOPInstanceUID
    assert meta.study_uid == ds.StudyInstanceUID and meta.patient_id == ds.PatientID
    assert tensor.shape == (1, 128, 128) and tensor.dtype.name == "float32"


def test_claim_check_envelope_reads_below_the_root(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "ct.dcm").write_bytes(CT.read_bytes())
    policy = ClaimCheckPolicy(tmp_path, 10**8)
    for uri in (f"file://{tmp_path}/a/ct.dcm", "a/ct.dcm", str(tmp_path / "a" / "ct.dcm")):
        envelope = {"schema": "medstream.scan/v1", "event_id": "evt-9", "uri": uri, "patient_id": "ps"}
        meta, tensor = prepare_routed(json.dumps(envelope).encode(), policy)
        assert (meta.event_id, meta.patient_id, tensor.shape) == ("evt-9", "ps", (1, 128, 128))


@pytest.mark.parametrize(
    ("uri", "expected"),
    [("https://pacs/x.dcm", "uri_refused"), ("file://otherhost/x.dcm", "uri_refused"),
     ("../outside.dcm", "uri_refused"), ("/etc/passwd", "uri_refused")],
)
def test_claim_check_refuses_other_places(tmp_path: Path, uri: str, expected: str) -> None:
    assert reason(resolve_uri, uri, ClaimCheckPolicy(tmp_path, 10**8)) == expected


def test_claim_check_failures(tmp_path: Path) -> None:
    def envelope(uri: str, schema: str = "medstream.scan/v1") -> bytes:
        return json.dumps({"schema": schema, "event_id": "e", "uri": uri}).encode()

    big = tmp_path / "big.dcm"
    big.write_bytes(CT.read_bytes())
    policy = ClaimCheckPolicy(tmp_path, 1024)
    assert reason(prepare_routed, envelope("missing.dcm"), policy) == "uri_unreadable"
    assert reason(prepare_routed, envelope("big.dcm"), policy) == "oversize"
    assert reason(prepare_routed, envelope("big.dcm"), ClaimCheckPolicy(None, 10**8)) == "uri_refused"
    assert reason(prepare_routed, envelope("big.dcm", "medstream.scan/v2"), policy) == "schema_version"


def test_undecodable_scans() -> None:
    policy = ClaimCheckPolicy(None, 10**8)
    assert reason(prepare_routed, b"hello world", policy) == "format"
    assert reason(prepare_routed, b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00garbage" * 5, policy) == "dicom_decode"
    assert reason(prepare_routed, b'{"schema": "medstream.scan/v1", "ev', policy) == "json_decode"
    raw = CT.read_bytes()
    assert reason(prepare_routed, raw[: len(raw) // 2], policy) in {"pixel_decode", "dicom_decode"}


def test_dicom_event_time_prefers_acquisition_and_honours_offset() -> None:
    ds = pydicom.Dataset()
    ds.ContentDate, ds.ContentTime = "20240102", "030405"
    assert dicom_event_time(ds) == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    ds.AcquisitionDateTime = "20240102100000"
    ds.TimezoneOffsetFromUTC = "+0200"
    assert dicom_event_time(ds) == datetime(2024, 1, 2, 8, 0, 0, tzinfo=UTC)
    ds.AcquisitionDateTime = "not a date"
    assert dicom_event_time(ds) is None
    assert dicom_event_time(pydicom.Dataset()) is None
