"""`medstream receive ...` against the real broker, driven by real clients: the DICOM SCP by
dcmtk's echoscu/storescu and the MLLP listener by python-hl7's `mllp_send`; each stores (acks)
only after Kafka acknowledged, and refuses (out of resources / AE) when the broker is gone.
"""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import HEVCMP51

from medstream_tools.localstack.process import port_open
from medstream_tools.ports import free_port
from tests.support.producers import (
    CT,
    MR,
    WAIT_S,
    assert_deidentified,
    client_env,
    consume,
    dicom_echo_ok,
    metrics_text,
    mllp_send,
    oru_message,
    own_broker_env,
    run_client,
    terminate,
    wait_until_up,
)
from tests.support.routing import prepare_routed
from worker.contracts import decode_vitals
from worker.scan_input import ClaimCheckPolicy
from worker.settings import Settings

pytestmark = pytest.mark.integration


def test_dicom_scp_stores_after_kafka_ack_and_refuses_bad_instances(
    settings: Settings, topic_factory, receiver, tmp_path: Path
) -> None:
    topic, port, metrics_port = topic_factory("scans"), free_port(), free_port()
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
        client_env(settings),
    )
    wait_until_up(lambda: dicom_echo_ok(port, "MEDTEST"), proc)
    store = ["storescu", "-aec", "MEDTEST", "127.0.0.1", str(port)]
    ok = run_client([*store, str(CT), str(MR)])
    assert ok.returncode == 0, ok.stderr
    no_pixels = pydicom.dcmread(CT)
    del no_pixels.PixelData
    no_pixels.save_as(tmp_path / "no-pixels.dcm")
    bad = run_client([*store, "-v", str(tmp_path / "no-pixels.dcm")])
    assert bad.returncode != 0 and "Store Response (Error: CannotUnderstand)" in bad.stderr
    wrong_ae = run_client(["storescu", "-aec", "OTHER", "127.0.0.1", str(port), str(CT)])
    assert wrong_ae.returncode != 0
    assert dicom_echo_ok(port, "MEDTEST")  # still serving
    records = consume(settings, topic, 2)
    assert len(records) == 2
    assert {assert_deidentified(r.value).Modality for r in records} == {"CT", "MR"}
    text = metrics_text(metrics_port)
    assert f'medstream_producer_published_total{{source="dicom_scp",topic="{topic}"}} 2.0' in text
    assert 'reason="no_pixel_data",source="dicom_scp"} 1.0' in text
    assert 'source="dicom_scp",status="0xC000"} 1.0' in text
    assert 'reason="association_rejected",source="dicom_scp"} 1.0' in text



def test_dicom_scp_stores_compressed_syntaxes_the_worker_decodes_and_refuses_video(
    settings: Settings, topic_factory, receiver, tmp_path: Path
) -> None:
    """Issue 12: JPEG Lossless SV1, JPEG-LS and 12-bit JPEG Extended were acknowledged with
    Success and then dead-lettered as `pixel_decode`. Now what is stored decodes, and a syntax
    no decoder handles is refused at association negotiation (the sender keeps it)."""
    topic, port = topic_factory("scans"), free_port()
    args = ["dicom", "--port", str(port), "--ae-title", "MEDTEST", "--topic", topic,
            "--metrics-port", "0"]
    proc = receiver(args, client_env(settings))
    wait_until_up(lambda: dicom_echo_ok(port, "MEDTEST"), proc)
    # storescu proposes a compressed syntax only when told to (and would convert otherwise)
    sent = {"JPGLosslessP14SV1_1s_1f_8b.dcm": "-xs", "MR_small_jpeg_ls_lossless.dcm": "-xt",
            "JPGExtended.dcm": "-xx"}
    store = ["storescu", "-aec", "MEDTEST", "127.0.0.1", str(port)]
    for name, propose in sent.items():
        ok = run_client([*store, propose, get_testdata_file(name)])
        assert ok.returncode == 0, ok.stderr
    video = pydicom.dcmread(CT)
    video.file_meta.TransferSyntaxUID = HEVCMP51
    video.PixelData = pydicom.encaps.encapsulate([b"\x00\x00\x00\x01" * 4])
    video["PixelData"].VR = "OB"
    video.save_as(tmp_path / "video.dcm", enforce_file_format=True)
    refused = run_client([*store, "-x4", str(tmp_path / "video.dcm")])
    assert refused.returncode != 0 and "presentation context" in refused.stderr.lower(), refused
    names = list(sent)
    records = consume(settings, topic, len(names))
    assert len(records) == len(names)
    syntaxes = set()
    for record in records:
        ds = assert_deidentified(record.value)
        syntaxes.add(ds.file_meta.TransferSyntaxUID.name)
        _, tensor = prepare_routed(record.value, ClaimCheckPolicy(None, 10**8), require_deid=True)
        assert np.isfinite(tensor).all() and tensor.max() > tensor.min()
    assert len(syntaxes) == 3  # stored as sent: still compressed




def test_dicom_scp_answers_out_of_resources_when_kafka_is_gone(
    settings: Settings, receiver, own_broker
) -> None:
    """The broker stops mid-run: the sender is told to retry (0xA700), the SCP keeps serving."""
    (kafka_port, broker_proc), port, metrics_port = own_broker, free_port(), free_port()
    args = ["dicom", "--port", str(port), "--topic", "own", "--metrics-port", str(metrics_port)]
    proc = receiver(args, own_broker_env(settings, kafka_port))
    wait_until_up(lambda: dicom_echo_ok(port, "MEDSTREAM"), proc)
    store = ["storescu", "-v", "-aec", "MEDSTREAM", "127.0.0.1", str(port)]
    ok = run_client([*store, str(CT)])
    assert ok.returncode == 0, ok.stderr
    terminate(broker_proc)
    refused = run_client([*store, str(MR)])
    assert refused.returncode != 0 and "OutOfResources" in refused.stderr, refused.stderr
    assert dicom_echo_ok(port, "MEDSTREAM")  # still serving
    text = metrics_text(metrics_port)
    assert 'medstream_producer_publish_failures_total{source="dicom_scp"} 1.0' in text
    assert 'source="dicom_scp",status="0xA700"} 1.0' in text


def test_hl7_listener_answers_ae_when_kafka_is_gone(
    settings: Settings, receiver, own_broker, tmp_path: Path
) -> None:
    """The broker stops mid-run: the sender gets AE (retry later), the listener keeps serving."""
    (kafka_port, broker_proc), port, metrics_port = own_broker, free_port(), free_port()
    args = ["hl7", "--port", str(port), "--topic", "own", "--metrics-port", str(metrics_port)]
    proc = receiver(args, own_broker_env(settings, kafka_port))
    wait_until_up(lambda: port_open("127.0.0.1", port), proc)
    message = tmp_path / "one.hl7"
    message.write_text(oru_message("K1", 0, "OBX|1|NM|8867-4^Heart rate^LN||88|/min|||||F"))
    assert mllp_send(port, message) == ["MSA|AA|K1"]
    terminate(broker_proc)
    message.write_text(oru_message("K2", 1, "OBX|1|NM|8867-4^Heart rate^LN||89|/min|||||F"))
    (nak,) = mllp_send(port, message)
    assert nak.startswith("MSA|AE|K2|not stored, retry later")
    assert port_open("127.0.0.1", port)
    text = metrics_text(metrics_port)
    assert 'medstream_producer_publish_failures_total{source="hl7"} 1.0' in text
    assert 'reason="kafka_unavailable",source="hl7"} 1.0' in text




def test_hl7_listener_acks_publishes_windows_and_naks_bad_messages(
    settings: Settings, topic_factory, receiver, tmp_path: Path
) -> None:
    topic, port, metrics_port = topic_factory("vitals"), free_port(), free_port()
    proc = receiver(
        ["hl7", "--port", str(port), "--topic", topic, "--metrics-port", str(metrics_port)],
        client_env(settings),
    )
    wait_until_up(lambda: port_open("127.0.0.1", port), proc)
    messages = tmp_path / "batch.hl7"
    messages.write_text(
        oru_message(
            "M1",
            0,
            "OBX|1|NM|8867-4^Heart rate^LN||88|/min|||||F\n"
            "OBX|2|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC||95|%|||||F",
        )
        + oru_message("M2", 1, "OBX|1|NM|8480-6^SBP^LN||118|mm[Hg]|||||F\nOBX|2|NM|1-1^Odd^LN||5|x|||||F")
        + oru_message("M3", 2, "OBX|1|NM|99999-9^Unknown^LN||5|x|||||F")
        + oru_message("M4", 3, "OBX|1|NM|8867-4^HR^LN||90|/min|||||F", pid="PID|1||")
        + "MSH|^~\\&|MONITOR|ICU|MEDSTREAM|HOSP|20260101120400||ADT^A01|M5|P|2.5\nPID|1||MRN-9\n"
    )
    assert mllp_send(port, messages) == [
        "MSA|AA|M1",
        "MSA|AA|M2",
        "MSA|AE|M3|no usable vital sign: unknown observation codes ['99999-9']",
        "MSA|AE|M4|PID-3 patient identifier is empty",
        "MSA|AR|M5|message type ADT A01 is not supported (only ORU R01)",
    ]
    garbage = tmp_path / "garbage.mllp"
    garbage.write_bytes(b"\x0bthis is not HL7\x1c\r")
    assert mllp_send(port, garbage, loose=False)[0].startswith("MSA|AR||not an HL7 v2 message")
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT_S) as raw:
        raw.sendall(b"no start block\x1c\r")  # broken MLLP framing: the connection is closed
        assert raw.recv(1024) == b""
    records = consume(settings, topic, 2)
    assert len(records) == 2  # M1 and M2 only; the receiver is still serving after garbage
    first, second = (decode_vitals(r.value) for r in records)
    assert first.patient_id == second.patient_id and first.patient_id.startswith("PSN-")
    assert not any(b"MRN-9" in r.value or b"DOE" in r.value for r in records)
    assert first.values[-1][:2] == [88.0, 95.0]
    assert second.values[-2][:2] == [88.0, 95.0] and second.values[-1][3] == 118.0
    text = metrics_text(metrics_port)
    for line in (
        'reason="unknown_code",source="hl7"} 1.0',
        'reason="mllp_framing",source="hl7"} 1.0',
        'source="hl7",status="AA"} 2.0',
        'source="hl7",status="AE"} 2.0',
        'source="hl7",status="AR"} 2.0',
    ):
        assert line in text




def test_hl7_units_are_converted_and_bad_units_or_dates_answered_ae_on_one_connection(
    settings: Settings, topic_factory, receiver, tmp_path: Path
) -> None:
    """Issue 12: `1.5 Hz` was stored as 1.5 /min, `310 K` as 310 degC, and OBX-14
    `00010101000000` closed the connection without an ACK."""
    topic, port, metrics_port = topic_factory("vitals"), free_port(), free_port()
    args = ["hl7", "--port", str(port), "--topic", topic, "--metrics-port", str(metrics_port),
            "--timezone", "Europe/Berlin"]
    proc = receiver(args, client_env(settings))
    wait_until_up(lambda: port_open("127.0.0.1", port), proc)
    hr = "OBX|1|NM|8867-4^Heart rate^LN||{}|{}|||||F|||{}"
    messages = tmp_path / "odd.hl7"
    messages.write_text(
        oru_message("U1", 0, hr.format("1.5", "Hz", "") + "\nOBX|2|NM|8310-5^Temp^LN||310|K|||||F")
        + oru_message("U2", 1, "OBX|1|NM|8310-5^Temp^LN||98.6|[degF]|||||F")
        + oru_message("U3", 2, hr.format("80", "/min", "00010101000000"))
        + oru_message("U4", 3, hr.format("80", "/min", "2026-13-45 garbage"))
        + oru_message("U5", 4, hr.format("80", "furlong", ""))
        + oru_message("U6", 5, hr.format("80", "", ""))
        + oru_message("U7", 6, hr.format("1.25", "Hz", ""))
    )
    assert mllp_send(port, messages) == [  # one connection: every message answered on it
        "MSA|AA|U1",
        "MSA|AA|U2",
        "MSA|AE|U3|OBX-14 of OBX 1 lies before 1900",
        "MSA|AE|U4|OBX-14 of OBX 1 is not a valid HL7 date/time",
        "MSA|AE|U5|OBX 1 (8867-4): unit 'furlong' is not accepted for hr (e.g. /min)",
        "MSA|AE|U6|OBX 1 (8867-4): no unit (OBX-6) for hr; send /min",
        "MSA|AA|U7",
    ]
    assert port_open("127.0.0.1", port) and proc.poll() is None
    windows = [decode_vitals(r.value) for r in consume(settings, topic, 3)]
    assert len(windows) == 3
    first, second, third = windows
    assert first.values[-1][0] == 90.0 and round(first.values[-1][5], 2) == 36.85
    assert round(second.values[-1][5], 2) == 37.0
    assert third.values[-1][0] == 75.0
    text = metrics_text(metrics_port)
    for line in ('reason="invalid_time",source="hl7"} 2.0', 'reason="unknown_unit",source="hl7"} 1.0',
                 'reason="missing_unit",source="hl7"} 1.0', 'source="hl7",status="AE"} 4.0'):
        assert line in text
