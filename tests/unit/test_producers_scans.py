"""Scan events: validation, claim-check envelope, idempotent ids, input discovery."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from producers.claimcheck import ClaimCheckStore
from producers.deid.pseudonym import Pseudonymizer
from producers.progress import Progress, Tally
from producers.scan_events import build_scan_event
from producers.scan_sources import iter_inputs
from worker.contracts import SCAN_SCHEMA, decode_scan_envelope
from worker.errors import PoisonMessage

KEY = b"unit-test-key-0123456789"
CT = Path(get_testdata_file("CT_small.dcm"))


def _event(data: bytes, tmp_path: Path, limit: int = 10 * 1024 * 1024, key: bytes | None = KEY):
    return build_scan_event(
        data,
        pseudonyms=Pseudonymizer(key) if key else None,
        max_message_bytes=limit,
        store=ClaimCheckStore(tmp_path / "store"),
    )


def test_small_scan_is_sent_inline_deidentified_and_keyed_by_study(tmp_path: Path) -> None:
    event = _event(CT.read_bytes(), tmp_path)
    ds = pydicom.dcmread(io.BytesIO(event.value))
    original = pydicom.dcmread(CT)
    assert not event.claim_checked
    assert event.key == str(ds.StudyInstanceUID).encode()
    assert event.event_id == ds.SOPInstanceUID == Pseudonymizer(KEY).uid(original.SOPInstanceUID)
    assert ds.PatientID != original.PatientID
    assert ("content-type", b"application/dicom") in event.headers


def test_republishing_gives_the_same_key_and_event_id(tmp_path: Path) -> None:
    first, second = _event(CT.read_bytes(), tmp_path), _event(CT.read_bytes(), tmp_path)
    assert (first.key, first.event_id, first.value) == (second.key, second.event_id, second.value)


def test_deid_off_publishes_the_original_bytes(tmp_path: Path) -> None:
    event = _event(CT.read_bytes(), tmp_path, key=None)
    assert event.value == CT.read_bytes()
    assert event.event_id == pydicom.dcmread(CT).SOPInstanceUID


def test_large_scan_goes_by_claim_check(tmp_path: Path) -> None:
    event = _event(CT.read_bytes(), tmp_path, limit=8192)
    assert event.claim_checked
    body = json.loads(event.value)
    envelope = decode_scan_envelope(event.value)  # the worker's own decoder accepts it
    stored = Path(envelope.uri.removeprefix("file://"))
    assert body["schema"] == SCAN_SCHEMA and envelope.event_id == event.event_id
    assert stored.parent == (tmp_path / "store").resolve()
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == body["sha256"]
    assert pydicom.dcmread(stored).PatientID == body["patient_id"] != pydicom.dcmread(CT).PatientID


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda data: b"hello, not DICOM", "not_dicom"),
        (lambda data: data[:3000], "no_pixel_data"),
    ],
)
def test_unusable_inputs_are_rejected_with_a_reason(tmp_path: Path, mutate, reason: str) -> None:
    with pytest.raises(PoisonMessage) as info:
        _event(mutate(CT.read_bytes()), tmp_path)
    assert info.value.reason == reason


def test_truncated_pixel_data_is_rejected(tmp_path: Path) -> None:
    ds = pydicom.dcmread(CT)
    ds.Rows = 512
    buffer = io.BytesIO()
    ds.save_as(buffer)
    with pytest.raises(PoisonMessage) as info:
        _event(buffer.getvalue(), tmp_path)
    assert info.value.reason == "truncated_pixel_data"


def test_inputs_walk_folders_and_zips_in_order(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "one.dcm").write_bytes(CT.read_bytes())
    (tmp_path / "a" / "note.txt").write_text("not dicom")
    with zipfile.ZipFile(tmp_path / "study.zip", "w") as archive:
        archive.writestr("series/1.dcm", CT.read_bytes())
        archive.writestr("series/2.dcm", b"junk")
    items = list(iter_inputs([tmp_path / "a", tmp_path / "study.zip", tmp_path / "missing"]))
    names = [name for name, _ in items]
    assert names[0].endswith("b/one.dcm") and names[1].endswith("note.txt")
    assert names[2].endswith("study.zip!series/1.dcm") and names[3].endswith("series/2.dcm")
    assert items[2][1] == CT.read_bytes()
    assert isinstance(items[4][1], FileNotFoundError)


def test_run_summary_counts_rejections_by_reason() -> None:
    stream, tally = io.StringIO(), Tally()
    progress = Progress("scans", stream)
    for name in ("seen", "seen", "seen", "published", "claim_checked"):
        tally.add(name)
    tally.reject("not_dicom")
    tally.reject("not_dicom")
    progress.report("a.txt", "not_dicom", "not a DICOM Part-10 file")
    progress.finish(tally)
    assert stream.getvalue().splitlines() == [
        "skipped a.txt: not_dicom: not a DICOM Part-10 file",
        "scans: 3 read, 1 published (1 by claim-check), 2 rejected (not_dicom=2), 0 failed",
    ]
