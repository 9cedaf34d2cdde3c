"""`medstream produce ...` against the real broker: scans (files, folders, zips, claim checks)
and vital windows (CSV, MIT-BIH, simulation) arrive de-identified; a broker that is not there
or a missing key fail with a clear message. The CLI runs as a subprocess.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest

from medstream_tools.ports import free_port
from tests.support.producers import (
    CT,
    MR,
    assert_deidentified,
    client_env,
    consume,
    run_medstream,
)
from worker.contracts import SCAN_SCHEMA, decode_scan_envelope, decode_vitals
from worker.settings import Settings

pytestmark = pytest.mark.integration


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
    result = run_medstream(args, client_env(settings))
    assert result.returncode == 0, result.stderr
    assert "skipped" in result.stderr and "not_dicom" in result.stderr
    assert "4 read, 2 published, 2 rejected" in result.stderr
    again = run_medstream(args, client_env(settings))  # idempotent re-run: same keys and event ids
    assert again.returncode == 0, again.stderr
    records = consume(settings, topic, 4)
    assert len(records) == 4
    ids = [dict(r.headers)["event-id"] for r in records]
    assert ids[:2] == ids[2:] and [r.key for r in records[:2]] == [r.key for r in records[2:]]
    for record in records:
        ds = assert_deidentified(record.value)
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
    result = run_medstream(args, client_env(settings))
    assert result.returncode == 0 and "3 read, 3 published" in result.stderr, result.stderr
    records = consume(settings, topic, 3)
    assert len(records) == 3 and len({dict(r.headers)["event-id"] for r in records}) == 1


def test_produce_scans_sends_large_files_by_claim_check(
    settings: Settings, topic_factory, tmp_path: Path
) -> None:
    topic = topic_factory("scans")
    env = client_env(
        settings,
        MEDSTREAM_MAX_MESSAGE_BYTES="8192",
        MEDSTREAM_CLAIM_CHECK_DIR=str(tmp_path / "store"),
    )
    result = run_medstream(["produce", "scans", str(CT), "--topic", topic, "--metrics-port", "0"], env)
    assert result.returncode == 0, result.stderr
    (record,) = consume(settings, topic, 1)
    envelope = decode_scan_envelope(record.value)
    assert json.loads(record.value)["schema"] == SCAN_SCHEMA
    stored = Path(envelope.uri.removeprefix("file://"))
    assert stored.parent == (tmp_path / "store").resolve()
    assert_deidentified(stored.read_bytes())


def test_unreachable_broker_and_missing_key_fail_with_a_clear_message(settings: Settings) -> None:
    env = client_env(
        settings,
        MEDSTREAM_KAFKA_BOOTSTRAP=f"127.0.0.1:{free_port()}",
        MEDSTREAM_PRODUCER_BOOTSTRAP_TIMEOUT_S="2",
    )
    result = run_medstream(["produce", "scans", str(CT), "--metrics-port", "0"], env)
    assert result.returncode == 2 and "unreachable" in result.stderr
    env = client_env(settings)
    del env["MEDSTREAM_PSEUDONYM_KEY"]
    result = run_medstream(["produce", "vitals", "--simulate", "1", "--metrics-port", "0"], env)
    assert result.returncode == 2 and "MEDSTREAM_PSEUDONYM_KEY" in result.stderr




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
        result = run_medstream(["produce", "vitals", *source, *common], client_env(settings))
        assert result.returncode == 0, result.stderr
    # csv: 90 rows -> windows at 0 and 30 s; MIT-BIH: 300 s -> 9; simulated: 3 x 3
    records = consume(settings, topic, 2 + 9 + 9)
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


