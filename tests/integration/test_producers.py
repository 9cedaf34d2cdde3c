"""Producers and receivers against the real broker, driven by real clients.

`medstream produce ...` and `medstream receive ...` run as subprocesses (the real CLI); the
DICOM SCP is driven by dcmtk's echoscu/storescu and the MLLP listener by python-hl7's
`mllp_send`. Every test uses its own topic and checks what arrived is de-identified.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pydicom
import pytest
from kafka import KafkaConsumer
from kafka.admin import NewTopic
from pydicom.data import get_testdata_file

from medstream_tools.localstack import broker
from worker.contracts import SCAN_SCHEMA, decode_scan_envelope, decode_vitals
from worker.settings import Settings
from worker.topics import create_topics

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
KEY = "integration-test-pseudonym-key"
CT, MR = Path(get_testdata_file("CT_small.dcm")), Path(get_testdata_file("MR_small.dcm"))
BIN = Path(sys.executable).parent
WAIT_S = 60


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDSTREAM_")}
    env.update(MEDSTREAM_KAFKA_BOOTSTRAP=settings.kafka_bootstrap, MEDSTREAM_PSEUDONYM_KEY=KEY)
    env.update(extra)
    return env


def _run(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run a client to completion (bounded), capturing its text output."""
    return subprocess.run(
        args, capture_output=True, text=True, timeout=WAIT_S, check=False, **kwargs
    )


def _medstream(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return _run([sys.executable, "-m", "worker.cli", *args], cwd=ROOT, env=env)


def _echo_ok(port: int, ae_title: str) -> bool:
    return _run(["echoscu", "-aec", ae_title, "127.0.0.1", str(port)]).returncode == 0


def _consume(settings: Settings, topic: str, count: int) -> list:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    records: list = []
    deadline = time.monotonic() + WAIT_S
    try:
        while len(records) < count and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        for batch in consumer.poll(timeout_ms=1000).values():  # anything beyond `count`
            records.extend(batch)
    finally:
        consumer.close()
    return records


def _metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


def _wait_until(check: Callable[[], bool], proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else "receiver exited"
        assert time.monotonic() < deadline, "receiver did not come up"
        time.sleep(0.3)


@pytest.fixture
def receiver(settings: Settings) -> Iterator[Callable[..., subprocess.Popen]]:
    """Start `medstream receive ...` subprocesses; terminated (SIGTERM) after the test."""
    procs: list[subprocess.Popen] = []

    def start(args: list[str], env: dict[str, str]) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-m", "worker.cli", "receive", *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=WAIT_S)


def _assert_deidentified(value: bytes) -> pydicom.Dataset:
    ds = pydicom.dcmread(io.BytesIO(value))
    originals = {str(pydicom.dcmread(p).PatientID) for p in (CT, MR)}
    assert ds.PatientID.startswith("PSN-") and ds.PatientIdentityRemoved == "YES"
    assert not any(pid.encode() in value for pid in originals if pid)
    assert ds.StudyInstanceUID.startswith("2.25.")
    return ds


def test_produce_scans_publishes_files_folders_zips_and_skips_bad_inputs(
    settings: Settings, topic_factory, tmp_path: Path
) -> None:
    topic = topic_factory("scans")
    (tmp_path / "in" / "sub").mkdir(parents=True)
    shutil.copy(CT, tmp_path / "in" / "sub" / "ct.dcm")
    (tmp_path / "in" / "readme.txt").write_text("not a scan")
    (tmp_path / "in" / "corrupt.dcm").write_bytes(CT.read_bytes()[:3000])
    with zipfile.ZipFile(tmp_path / "study.zip", "w") as archive:
        archive.write(MR, "study/mr.dcm")
    args = [
        "produce",
        "scans",
        str(tmp_path / "in"),
        str(tmp_path / "study.zip"),
        "--topic",
        topic,
        "--metrics-port",
        "0",
    ]
    result = _medstream(args, _env(settings))
    assert result.returncode == 0, result.stderr
    assert "skipped" in result.stderr and "not_dicom" in result.stderr
    assert "4 read, 2 published, 2 rejected" in result.stderr
    again = _medstream(args, _env(settings))  # idempotent re-run: same keys and event ids
    assert again.returncode == 0, again.stderr
    records = _consume(settings, topic, 4)
    assert len(records) == 4
    ids = [dict(r.headers)["event-id"] for r in records]
    assert ids[:2] == ids[2:] and [r.key for r in records[:2]] == [r.key for r in records[2:]]
    for record in records:
        ds = _assert_deidentified(record.value)
        assert record.key == ds.StudyInstanceUID.encode()


def test_produce_scans_loop_repeats_with_the_same_event_id(
    settings: Settings, topic_factory
) -> None:
    topic = topic_factory("scans")
    args = [
        "produce",
        "scans",
        str(CT),
        "--loop",
        "--limit",
        "3",
        "--rate",
        "20",
        "--topic",
        topic,
        "--metrics-port",
        "0",
    ]
    result = _medstream(args, _env(settings))
    assert result.returncode == 0 and "3 read, 3 published" in result.stderr, result.stderr
    records = _consume(settings, topic, 3)
    assert len(records) == 3 and len({dict(r.headers)["event-id"] for r in records}) == 1


def test_produce_scans_sends_large_files_by_claim_check(
    settings: Settings, topic_factory, tmp_path: Path
) -> None:
    topic = topic_factory("scans")
    env = _env(
        settings,
        MEDSTREAM_MAX_MESSAGE_BYTES="8192",
        MEDSTREAM_CLAIM_CHECK_DIR=str(tmp_path / "store"),
    )
    result = _medstream(["produce", "scans", str(CT), "--topic", topic, "--metrics-port", "0"], env)
    assert result.returncode == 0, result.stderr
    (record,) = _consume(settings, topic, 1)
    envelope = decode_scan_envelope(record.value)
    assert json.loads(record.value)["schema"] == SCAN_SCHEMA
    stored = Path(envelope.uri.removeprefix("file://"))
    assert stored.parent == (tmp_path / "store").resolve()
    _assert_deidentified(stored.read_bytes())


def test_unreachable_broker_and_missing_key_fail_with_a_clear_message(settings: Settings) -> None:
    env = _env(
        settings,
        MEDSTREAM_KAFKA_BOOTSTRAP=f"127.0.0.1:{_free_port()}",
        MEDSTREAM_PRODUCER_BOOTSTRAP_TIMEOUT_S="2",
    )
    result = _medstream(["produce", "scans", str(CT), "--metrics-port", "0"], env)
    assert result.returncode == 2 and "unreachable" in result.stderr
    env = _env(settings)
    del env["MEDSTREAM_PSEUDONYM_KEY"]
    result = _medstream(["produce", "vitals", "--simulate", "1", "--metrics-port", "0"], env)
    assert result.returncode == 2 and "MEDSTREAM_PSEUDONYM_KEY" in result.stderr


def test_dicom_scp_stores_after_kafka_ack_and_refuses_bad_instances(
    settings: Settings, topic_factory, receiver, tmp_path: Path
) -> None:
    topic, port, metrics_port = topic_factory("scans"), _free_port(), _free_port()
    proc = receiver(
        [
            "dicom",
            "--port",
            str(port),
            "--ae-title",
            "MEDTEST",
            "--topic",
            topic,
            "--metrics-port",
            str(metrics_port),
        ],
        _env(settings),
    )
    _wait_until(lambda: _echo_ok(port, "MEDTEST"), proc)
    store = ["storescu", "-aec", "MEDTEST", "127.0.0.1", str(port)]
    ok = _run([*store, str(CT), str(MR)])
    assert ok.returncode == 0, ok.stderr
    no_pixels = pydicom.dcmread(CT)
    del no_pixels.PixelData
    no_pixels.save_as(tmp_path / "no-pixels.dcm")
    bad = _run([*store, "-v", str(tmp_path / "no-pixels.dcm")])
    assert bad.returncode != 0 and "Store Response (Error: CannotUnderstand)" in bad.stderr
    wrong_ae = _run(["storescu", "-aec", "OTHER", "127.0.0.1", str(port), str(CT)])
    assert wrong_ae.returncode != 0
    assert _echo_ok(port, "MEDTEST")  # still serving
    records = _consume(settings, topic, 2)
    assert len(records) == 2
    assert {_assert_deidentified(r.value).Modality for r in records} == {"CT", "MR"}
    text = _metrics(metrics_port)
    assert f'medstream_producer_published_total{{source="dicom_scp",topic="{topic}"}} 2.0' in text
    assert 'reason="no_pixel_data",source="dicom_scp"} 1.0' in text
    assert 'source="dicom_scp",status="0xC000"} 1.0' in text
    assert 'reason="association_rejected",source="dicom_scp"} 1.0' in text


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen]]:
    """A Tansu broker of this test's own (port, process), with topic `own`; the test may stop it."""
    port = _free_port()
    plan = broker.plan("tansu", "127.0.0.1", port, tmp_path)
    proc = subprocess.Popen(
        plan.argv, env=plan.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        _wait_until(lambda: _port_open(port), proc)
        create_topics(f"127.0.0.1:{port}", [NewTopic("own", 1, 1)])
        yield port, proc
    finally:
        proc.terminate()
        proc.wait(timeout=WAIT_S)


def _own_broker_env(settings: Settings, kafka_port: int) -> dict[str, str]:
    return _env(
        settings,
        MEDSTREAM_KAFKA_BOOTSTRAP=f"127.0.0.1:{kafka_port}",
        MEDSTREAM_PRODUCER_DELIVERY_TIMEOUT_S="4",
        MEDSTREAM_PRODUCER_BOOTSTRAP_TIMEOUT_S="4",
    )


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(timeout=WAIT_S)


def test_dicom_scp_answers_out_of_resources_when_kafka_is_gone(
    settings: Settings, receiver, own_broker
) -> None:
    """The broker stops mid-run: the sender is told to retry (0xA700), the SCP keeps serving."""
    (kafka_port, broker_proc), port, metrics_port = own_broker, _free_port(), _free_port()
    args = ["dicom", "--port", str(port), "--topic", "own", "--metrics-port", str(metrics_port)]
    proc = receiver(args, _own_broker_env(settings, kafka_port))
    _wait_until(lambda: _echo_ok(port, "MEDSTREAM"), proc)
    store = ["storescu", "-v", "-aec", "MEDSTREAM", "127.0.0.1", str(port)]
    ok = _run([*store, str(CT)])
    assert ok.returncode == 0, ok.stderr
    _stop(broker_proc)
    refused = _run([*store, str(MR)])
    assert refused.returncode != 0 and "OutOfResources" in refused.stderr, refused.stderr
    assert _echo_ok(port, "MEDSTREAM")  # still serving
    text = _metrics(metrics_port)
    assert 'medstream_producer_publish_failures_total{source="dicom_scp"} 1.0' in text
    assert 'source="dicom_scp",status="0xA700"} 1.0' in text


def test_hl7_listener_answers_ae_when_kafka_is_gone(
    settings: Settings, receiver, own_broker, tmp_path: Path
) -> None:
    """The broker stops mid-run: the sender gets AE (retry later), the listener keeps serving."""
    (kafka_port, broker_proc), port, metrics_port = own_broker, _free_port(), _free_port()
    args = ["hl7", "--port", str(port), "--topic", "own", "--metrics-port", str(metrics_port)]
    proc = receiver(args, _own_broker_env(settings, kafka_port))
    _wait_until(lambda: _port_open(port), proc)
    message = tmp_path / "one.hl7"
    message.write_text(_oru("K1", 0, "OBX|1|NM|8867-4^Heart rate^LN||88|/min|||||F"))
    assert _mllp_send(port, message) == ["MSA|AA|K1"]
    _stop(broker_proc)
    message.write_text(_oru("K2", 1, "OBX|1|NM|8867-4^Heart rate^LN||89|/min|||||F"))
    (nak,) = _mllp_send(port, message)
    assert nak.startswith("MSA|AE|K2|not stored, retry later")
    assert _port_open(port)
    text = _metrics(metrics_port)
    assert 'medstream_producer_publish_failures_total{source="hl7"} 1.0' in text
    assert 'reason="kafka_unavailable",source="hl7"} 1.0' in text


def test_produce_vitals_from_csv_mitbih_and_simulation(
    settings: Settings, topic_factory, tmp_path: Path
) -> None:
    topic = topic_factory("vitals")
    csv_path = tmp_path / "vitals.csv"
    rows = [f"{s},MRN-4711,bed-7,{70 + s % 5},{97 if s % 10 else ''},16,,," for s in range(90)]
    csv_path.write_text(
        "time,patient_id,device_id,hr,spo2,rr,sbp,dbp,temp\n"
        + "\n".join(rows)
        + "\nbad,MRN-4711,bed-7,x,,,,,\n"
    )
    common = ["--topic", topic, "--metrics-port", "0", "--start", "2026-01-01T00:00:00Z"]
    for source in (
        ["--csv", str(csv_path)],
        ["--mitbih"],
        ["--simulate", "3", "--duration", "120"],
    ):
        result = _medstream(["produce", "vitals", *source, *common], _env(settings))
        assert result.returncode == 0, result.stderr
    # csv: 90 rows -> windows at 0 and 30 s; MIT-BIH: 300 s -> 9; simulated: 3 x 3
    records = _consume(settings, topic, 2 + 9 + 9)
    assert len(records) == 20
    windows = [decode_vitals(r.value) for r in records]
    assert all(
        w.patient_id.startswith("PSN-") and r.key == w.patient_id.encode()
        for w, r in zip(windows, records)
    )
    assert not any(b"MRN-4711" in r.value or b"bed-7" in r.value for r in records)
    csv_windows = [
        w
        for w in windows
        if w.values[0][2] == 16.0
        and w.values[0][0] is not None
        and w.values[0][3] is None
        and len({row[2] for row in w.values}) == 1
    ]
    assert len(csv_windows) == 2 and csv_windows[0].values[0][1] is None  # never invented


def _mllp_send(port: int, path: Path, *, loose: bool = True) -> list[str]:
    args = [str(BIN / "mllp_send"), "-p", str(port), "-f", str(path), "127.0.0.1"]
    result = _run(args + (["--loose"] if loose else []))
    assert result.returncode == 0, result.stderr
    return [
        line for line in result.stdout.replace("\r", "\n").splitlines() if line.startswith("MSA")
    ]


def _oru(
    control: str, minute: int, obx: str, pid: str = "PID|1||MRN-9|||DOE^JANE||19800101|F"
) -> str:
    return (
        f"MSH|^~\\&|MONITOR|ICU|MEDSTREAM|HOSP|202601011{minute:03d}00||ORU^R01|{control}|P|2.5\n"
        f"{pid}\nOBR|1|||VITALS|||2026010112{minute:02d}00\n{obx}\n"
    )


def test_hl7_listener_acks_publishes_windows_and_naks_bad_messages(
    settings: Settings, topic_factory, receiver, tmp_path: Path
) -> None:
    topic, port, metrics_port = topic_factory("vitals"), _free_port(), _free_port()
    proc = receiver(
        ["hl7", "--port", str(port), "--topic", topic, "--metrics-port", str(metrics_port)],
        _env(settings),
    )
    _wait_until(lambda: _port_open(port), proc)
    messages = tmp_path / "batch.hl7"
    messages.write_text(
        _oru(
            "M1",
            0,
            "OBX|1|NM|8867-4^Heart rate^LN||88|/min|||||F\n"
            "OBX|2|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC||95|%|||||F",
        )
        + _oru("M2", 1, "OBX|1|NM|8480-6^SBP^LN||118|mm[Hg]|||||F\nOBX|2|NM|1-1^Odd^LN||5|x|||||F")
        + _oru("M3", 2, "OBX|1|NM|99999-9^Unknown^LN||5|x|||||F")
        + _oru("M4", 3, "OBX|1|NM|8867-4^HR^LN||90|/min|||||F", pid="PID|1||")
        + "MSH|^~\\&|MONITOR|ICU|MEDSTREAM|HOSP|20260101120400||ADT^A01|M5|P|2.5\nPID|1||MRN-9\n"
    )
    assert _mllp_send(port, messages) == [
        "MSA|AA|M1",
        "MSA|AA|M2",
        "MSA|AE|M3|no usable vital sign: unknown observation codes ['99999-9']",
        "MSA|AE|M4|PID-3 patient identifier is empty",
        "MSA|AR|M5|message type ADT A01 is not supported (only ORU R01)",
    ]
    garbage = tmp_path / "garbage.mllp"
    garbage.write_bytes(b"\x0bthis is not HL7\x1c\r")
    assert _mllp_send(port, garbage, loose=False)[0].startswith("MSA|AR||not an HL7 v2 message")
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT_S) as raw:
        raw.sendall(b"no start block\x1c\r")  # broken MLLP framing: the connection is closed
        assert raw.recv(1024) == b""
    records = _consume(settings, topic, 2)
    assert len(records) == 2  # M1 and M2 only; the receiver is still serving after garbage
    first, second = (decode_vitals(r.value) for r in records)
    assert first.patient_id == second.patient_id and first.patient_id.startswith("PSN-")
    assert not any(b"MRN-9" in r.value or b"DOE" in r.value for r in records)
    assert first.values[-1][:2] == [88.0, 95.0]
    assert second.values[-2][:2] == [88.0, 95.0] and second.values[-1][3] == 118.0
    text = _metrics(metrics_port)
    for line in (
        'reason="unknown_code",source="hl7"} 1.0',
        'reason="mllp_framing",source="hl7"} 1.0',
        'source="hl7",status="AA"} 2.0',
        'source="hl7",status="AE"} 2.0',
        'source="hl7",status="AR"} 2.0',
    ):
        assert line in text


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0
