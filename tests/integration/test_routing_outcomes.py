"""Every DICOM of pydicom's and pydicom-data's test files, plus non-image objects (SR, PDF, SEG,
waveform, DICOMDIR), through one worker on the shipped rules and the real models: each file
ends as the outcome the rules promise (docs/routing.md), and no CT/MR/US/NM/OT image gets a
chest X-ray probability.

The files travel as claim-check envelopes (unique event ids: many test files share a
SOPInstanceUID), so each one's bytes reach the worker unchanged, the 7 MB radiographs too.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_files
from pydicom.dataset import FileMetaDataset
from pydicom.uid import UID, EncapsulatedPDFStorage, ExplicitVRLittleEndian, generate_uid

from tests.support.harness import Topics, collect, keys, publish
from tests.support.harness import TopicsWorker as WorkerProcess
from worker.contracts import ScanEnvelope, encode_scan_envelope
from worker.settings import Settings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CHEST, BRAIN = "chest_xray_pneumonia", "brain_mri_tumour"
CHEST_SOP = {"1.2.840.10008.5.1.4.1.1.1", "1.2.840.10008.5.1.4.1.1.1.1"}  # CR, DX for presentation
MR_SOP = {"1.2.840.10008.5.1.4.1.1.4", "1.2.840.10008.5.1.4.1.1.4.1", "1.2.840.10008.5.1.4.1.1.4.4"}
# Routed files whose pixel data cannot be served: a dead letter, never a guess
UNSERVABLE = {"emri_small_jpeg_2k_lossless_too_short.dcm": "dicom_decode"}  # truncated file


def encapsulated_pdf(path: Path) -> Path:
    """A DICOM Encapsulated PDF (a report scanned to PACS)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = EncapsulatedPDFStorage, generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.MIMETypeOfEncapsulatedDocument = "DOC", "application/pdf"
    ds.EncapsulatedDocument = b"%PDF-1.4\n%\xe2\xe3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
    ds.save_as(path, enforce_file_format=True)
    return path


def sample_files() -> list[Path]:
    """Every file of pydicom's and pydicom-data's test data, those in its folders (DICOMDIR
    trees) included."""
    found = set()
    for entry in map(Path, get_testdata_files()):
        found |= {p for p in entry.rglob("*") if p.is_file()} if entry.is_dir() else {entry}
    return sorted(found)


def _text(ds: pydicom.Dataset, keyword: str) -> str:
    return str(ds.get(keyword, "") or "").strip().upper()


def expected(path: Path) -> tuple[str, str]:
    """What the shipped rules promise for one file: ("model", name), ("skip", reason[:rule]) or
    ("dead", reason), worked out from its header here, independently of the worker."""
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception:  # noqa: BLE001 - no Part-10 preamble or unparsable: not a DICOM file
        return "dead", "dicom_decode"
    sop = str(ds.get("SOPClassUID") or ds.file_meta.get("MediaStorageSOPClassUID") or "")
    directory = sop == "1.2.840.10008.1.3.10"
    if not _text(ds, "SOPInstanceUID") and not directory:
        return "dead", "dicom_decode"
    if not sop or "Image Storage" not in UID(sop).name:
        return "skip", "non_image"
    modality, part, view = _text(ds, "Modality"), _text(ds, "BodyPartExamined"), _text(ds, "ViewPosition")
    image_type = [str(v).upper() for v in (ds.get("ImageType") or [])]
    if "LOCALIZER" in image_type:
        return "skip", "rule:ignore-localizers"
    if modality == "OT" or "Secondary Capture" in UID(sop).name:
        return "skip", "rule:secondary-capture"
    if modality in ("CR", "DX"):
        if part == "CHEST":
            frontal = view in ("PA", "AP") and sop in CHEST_SOP
            return ("model", CHEST) if frontal else ("skip", "rule:chest-radiograph-other-view")
        return "skip", "rule:radiograph-other-body-part"
    if modality == "MR":
        if part in ("BRAIN", "HEAD") and sop in MR_SOP:
            name = path.name.split("-", 1)[1]  # the store's names are "<index>-<file name>"
            return ("dead", UNSERVABLE[name]) if name in UNSERVABLE else ("model", BRAIN)
        return "skip", "rule:mr-other-body-part"
    rule = {"CT": "ct", "US": "ultrasound", "IVUS": "ultrasound", "NM": "nuclear-medicine",
            "PT": "nuclear-medicine"}.get(modality)
    return ("skip", f"rule:{rule}") if rule else ("skip", "no_route")


def observed(topic_kind: str, record: dict | None, headers: dict) -> tuple[str, str]:
    if topic_kind == "dead":
        return "dead", headers["error.type"].decode()
    assert record is not None
    if "model" in record:
        return "model", record["model"]
    rule = record["rule"]["name"] if record["rule"] else None
    return "skip", f"{record['reason']}:{rule}" if rule else record["reason"]


def test_every_test_file_gets_the_outcome_the_rules_promise(settings: Settings, topic_factory,
                                                            tmp_path: Path) -> None:
    store = tmp_path / "files"
    store.mkdir()
    sources = [*sample_files(), encapsulated_pdf(tmp_path / "report-pdf.dcm")]
    files = {}
    for index, source in enumerate(sources):
        target = store / f"{index:03d}-{source.name}"
        shutil.copyfile(source, target)
        files[f"file-{index:03d}"] = target
    topics = Topics.create(topic_factory)
    worker = WorkerProcess(settings, topics, tmp_path / "worker", extra_env={
        "MEDSTREAM_ROUTING__RULES": str(ROOT / "triton_models/routing.yaml"),
        "MEDSTREAM_SCAN__URI_ROOT": str(store)}).start()
    try:
        worker.wait_ready(90)
        publish(settings, topics.scans, [(key.encode(), encode_scan_envelope(
            ScanEnvelope(key, path.name))) for key, path in files.items()])
        wanted = {key.encode() for key in files}
        outputs = collect(settings, topics, lambda o: keys(o, topics.predictions)
                          | keys(o, topics.deadletter) >= wanted, 240, worker)
    finally:
        worker.stop()
    by_key = {}
    for o in outputs:
        kind = "dead" if o.topic == topics.deadletter else "out"
        assert o.key not in by_key, f"two outputs for {o.key!r}"
        by_key[o.key] = observed(kind, o.json() if kind == "out" else None, o.headers)
    assert set(by_key) == wanted

    got = {files[k.decode()].name: v for k, v in by_key.items()}
    promised = {path.name: expected(path) for path in files.values()}
    assert got == promised
    modality = {path.name: _modality(path) for path in files.values()}
    served = {name: model for name, (what, model) in got.items() if what == "model"}
    assert set(served.values()) == {CHEST, BRAIN}
    # no CT/MR/US/NM/OT image (or anything but a CR/DX) is given a chest X-ray probability
    assert {modality[name] for name, model in served.items() if model == CHEST} <= {"CR", "DX"}
    assert {modality[name] for name, model in served.items() if model == BRAIN} == {"MR"}
    for objects in ("SR", "SEG", "ECG", "DOC", "RTPLAN", "RTDOSE"):  # reports, segmentations, ...
        names = [n for n in got if modality[n] == objects]
        assert names and all(got[n] == ("skip", "non_image") for n in names), objects
    directories = [n for n in got if n.endswith("DICOMDIR")]
    assert directories and all(got[n] == ("skip", "non_image") for n in directories)
    assert {what for what, _ in got.values()} == {"model", "skip", "dead"}


def _modality(path: Path) -> str | None:
    try:
        return _text(pydicom.dcmread(path, stop_before_pixels=True), "Modality")
    except Exception:  # noqa: BLE001 - not DICOM
        return None
