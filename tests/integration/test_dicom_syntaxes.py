"""Issue 12 hostile battery (edge part), one worker run against the real broker and Triton:
one real file per transfer syntax and per colour model, de-identified by the producers' code,
is answered (predicted, or skipped by its routing rule — never a decode failure); non-image
SOP classes are skipped as `non_image` before any pixel access; a raw (not de-identified) file is
refused as `not_deidentified` under MEDSTREAM_REQUIRE_DEIDENTIFIED; the worker stays ready.
"""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import EncapsulatedPDFStorage, ExplicitVRLittleEndian, generate_uid

from producers.claimcheck import ClaimCheckStore
from producers.deid.dicom import deidentify
from producers.deid.pseudonym import Pseudonymizer
from producers.scan_events import build_scan_event, encode
from tests.support.harness import Topics, collect, publish
from tests.support.harness import TopicsWorker as WorkerProcess
from worker.settings import Settings

pytestmark = pytest.mark.integration
PSEUDONYMS = Pseudonymizer(b"integration-test-pseudonym-key")

SERVED = (
    # transfer syntaxes
    "MR_small_implicit.dcm", "CT_small.dcm", "MR_small_bigendian.dcm", "image_dfl.dcm",
    "MR_small_RLE.dcm", "SC_rgb_jpeg_dcmtk.dcm", "JPGExtended.dcm",
    "JPGLosslessP14SV1_1s_1f_8b.dcm", "JPEG-LL.dcm", "MR_small_jpeg_ls_lossless.dcm",
    "JPEGLSNearLossless_16.dcm", "MR_small_jp2klossless.dcm", "JPEG2000.dcm",
    # colour models and bit depths
    "OBXXXX1A.dcm", "gdcm-US-ALOKA-16.dcm", "SC_ybr_full_uncompressed.dcm",
    "SC_ybr_full_422_uncompressed.dcm", "examples_ybr_color.dcm", "SC_rgb.dcm",
    "SC_rgb_16bit.dcm", "US1_J2KR.dcm", "RG3_J2KR.dcm", "MR2_J2KR.dcm", "emri_small.dcm",
)
NON_IMAGE = ("rtdose.dcm", "liver.dcm", "test-SR.dcm", "encapsulated.pdf")


def _fresh(ds: Dataset) -> Dataset:
    """A new SOPInstanceUID (several test files share one, and predictions key on it); a
    StudyInstanceUID where the test file has none (the producers require one)."""
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = ds.get("StudyInstanceUID") or generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


def _pdf() -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.StudyInstanceUID, ds.Modality = EncapsulatedPDFStorage, generate_uid(), "DOC"
    ds.PatientID = "MRN-PDF"
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocument = b"%PDF-1.4\n%%EOF\n"
    return ds


def _inputs(tmp_path: Path) -> tuple[dict[str, str], list[tuple[bytes, bytes]]]:
    """(event id -> name of the served files, [(key = name, value)]) of every input."""
    events, items = {}, []
    for name in SERVED:  # through the producers' path: validate, de-identify, encode
        data = encode(_fresh(pydicom.dcmread(get_testdata_file(name))))
        event = build_scan_event(data, pseudonyms=PSEUDONYMS, max_message_bytes=10 * 2**20,
                                 store=ClaimCheckStore(tmp_path))
        events[event.event_id] = name
        items.append((name.encode(), event.value))
    for name in NON_IMAGE:  # the producers refuse pixel-less ones: de-identify them directly
        ds = _pdf() if name.endswith(".pdf") else pydicom.dcmread(get_testdata_file(name))
        items.append((name.encode(), encode(deidentify(_fresh(ds), PSEUDONYMS))))
    raw = encode(_fresh(pydicom.dcmread(get_testdata_file("CT_small.dcm"))))
    items.append((b"raw-identified", raw))
    return events, items


def test_every_syntax_and_colour_model_is_served_and_non_images_refused(
        settings: Settings, topic_factory, tmp_path: Path) -> None:
    topics = Topics.create(topic_factory)
    events, items = _inputs(tmp_path)
    worker = WorkerProcess(settings, topics, tmp_path / "worker", extra_env={
        "MEDSTREAM_REQUIRE_DEIDENTIFIED": "true"}).start()
    try:
        worker.wait_ready()
        publish(settings, topics.scans, items)

        def done(outputs: list) -> bool:
            return len(outputs) >= len(items)

        outputs = collect(settings, topics, done, 90, worker)
        answers = [o.json() for o in outputs if o.topic == topics.predictions]
        answered = {events[a["event_id"]] for a in answers if a["event_id"] in events}
        dead = {o.key.decode(): (o.headers["error.type"].decode(), o.headers["error.message"])
                for o in outputs if o.topic == topics.deadletter}
        # every decodable file is answered (a prediction, or a skip its routing rule decided:
        # never a pixel_decode dead letter); non-images are skipped before any pixel access
        assert answered == set(SERVED), (sorted(set(SERVED) - answered), dead)
        non_image = [a for a in answers
                     if a.get("outcome") == "skipped" and a["reason"] == "non_image"]
        assert len(non_image) == len(NON_IMAGE)
        assert {name: reason for name, (reason, _) in dead.items()} == {
            "raw-identified": "not_deidentified"}
        assert len(outputs) == len(items)  # exactly one output per input
        worker.assert_alive()
        assert worker.get("/ready")[0] == 200
        assert worker.metric("medstream_skipped_total",
                             {"kind": "scan", "reason": "non_image"}) == len(NON_IMAGE)
    finally:
        worker.stop()
