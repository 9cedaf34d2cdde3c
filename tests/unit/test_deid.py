"""De-identification: keyed pseudonyms and the DICOM PS3.15 basic-profile actions."""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from producers.claimcheck import ClaimCheckStore
from producers.deid.dicom import EMPTY, KEEP, REMAP, BurnedInAnnotation, deidentify
from producers.deid.pseudonym import Pseudonymizer
from producers.scan_events import build_scan_event, encode
from worker.errors import PoisonMessage
from worker.preprocess.scan import dicom_to_tensor
from worker.scan_input import require_deidentified

KEY = b"unit-test-key-0123456789"


@pytest.fixture
def ct() -> pydicom.Dataset:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.PatientBirthDate = "19700101"
    ds.InstitutionName = "General Hospital"
    ds.add_new(0x00091001, "LO", "private vendor data")
    return ds


def test_pseudonyms_are_keyed_and_stable() -> None:
    a, b = Pseudonymizer(KEY), Pseudonymizer(b"another-key-0123456789")
    assert a.patient("MRN123") == a.patient(" MRN123 ")
    assert a.patient("MRN123") != b.patient("MRN123")
    assert a.patient("MRN123") != a.patient("MRN124")
    assert a.patient("MRN123").startswith("PSN-") and len(a.patient("MRN123")) == 36


def test_uid_pseudonyms_are_valid_dicom_uids() -> None:
    uid = Pseudonymizer(KEY).uid("1.2.840.113619.2.1.1.322987881.621.736170080.681")
    assert uid.startswith("2.25.") and len(uid) <= 64
    assert all(
        part.isdigit() and (part == "0" or not part.startswith("0")) for part in uid.split(".")
    )


def test_short_key_is_refused() -> None:
    with pytest.raises(ValueError):
        Pseudonymizer(b"short")


def test_identifiers_are_replaced_removed_or_emptied(ct: pydicom.Dataset) -> None:
    original_patient = str(ct.PatientID)
    out = deidentify(ct, Pseudonymizer(KEY))
    assert out.PatientID == Pseudonymizer(KEY).patient(original_patient)
    assert str(out.PatientName) == out.PatientID
    for keyword in ("PatientBirthDate", "StudyDate", "AccessionNumber"):
        assert keyword in out and not out[keyword].value  # type 2: present, empty
    assert "InstitutionName" not in out
    assert not any(element.tag.is_private for element in out)
    assert out.PatientIdentityRemoved == "YES"
    assert out.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
    for keyword in REMAP & set(ct.dir()):
        assert out[keyword].value == Pseudonymizer(KEY).uid(str(ct[keyword].value))
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID


def test_every_kept_attribute_is_in_the_documented_tables(ct: pydicom.Dataset) -> None:
    out = deidentify(ct, Pseudonymizer(KEY))
    added = {
        "PatientID",
        "PatientName",
        "PatientIdentityRemoved",
        "DeidentificationMethod",
        "DeidentificationMethodCodeSequence",
        "LongitudinalTemporalInformationModified",
    }
    assert {e.keyword for e in out} <= KEEP | REMAP | EMPTY | added


def test_pixels_and_preprocessing_inputs_survive(ct: pydicom.Dataset) -> None:
    out = pydicom.dcmread(io.BytesIO(encode(deidentify(ct, Pseudonymizer(KEY)))))
    assert (out.pixel_array == ct.pixel_array).all()
    for keyword in ("RescaleSlope", "RescaleIntercept", "PhotometricInterpretation", "Rows"):
        assert out[keyword].value == ct[keyword].value


def test_source_dataset_is_not_modified(ct: pydicom.Dataset) -> None:
    before = str(ct.SOPInstanceUID)
    deidentify(ct, Pseudonymizer(KEY))
    assert str(ct.SOPInstanceUID) == before and ct.PatientBirthDate == "19700101"


def test_burned_in_annotation_is_refused(ct: pydicom.Dataset) -> None:
    ct.BurnedInAnnotation = "YES"
    with pytest.raises(BurnedInAnnotation):
        deidentify(ct, Pseudonymizer(KEY))


@pytest.mark.parametrize(
    "name",
    [
        "CT_small.dcm",
        "MR_small_RLE.dcm",
        "MR_small_jp2klossless.dcm",
        "emri_small.dcm",
        "SC_rgb_small_odd.dcm",
        "US1_UNCR.dcm",
        "JPEG2000.dcm",
        "OBXXXX1A.dcm",  # PALETTE COLOR
        "gdcm-US-ALOKA-16.dcm",  # PALETTE COLOR, 16-bit segmented palette
        "SC_ybr_full_422_uncompressed.dcm",
        "JPGLosslessP14SV1_1s_1f_8b.dcm",
        "emri_small_jpeg_ls_lossless.dcm",
    ],
)
def test_model_input_is_identical_after_deidentification(name: str) -> None:
    """The worker's preprocessing sees the same tensor before and after de-identification."""
    original = pydicom.dcmread(get_testdata_file(name))
    deidentified = pydicom.dcmread(io.BytesIO(encode(deidentify(original, Pseudonymizer(KEY)))))
    assert deidentified.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
    assert (dicom_to_tensor(deidentified) == dicom_to_tensor(original)).all()


def _without_patient_id(name: str, study_uid: str, patient_id: str | None) -> pydicom.Dataset:
    ds = pydicom.dcmread(get_testdata_file(name))
    ds.StudyInstanceUID = study_uid
    if patient_id is None:
        del ds.PatientID
    else:
        ds.PatientID = patient_id
    return ds


def test_missing_patient_ids_never_share_a_pseudonym_across_studies() -> None:
    """Issue 12: ten unrelated studies without PatientID all got one PSN- pseudonym."""
    pseudonyms = Pseudonymizer(KEY)
    studies = [f"1.2.3.{n}" for n in range(10)]
    outs = [deidentify(_without_patient_id("CT_small.dcm", uid, ["", "  ", None][n % 3]),
                       pseudonyms) for n, uid in enumerate(studies)]
    ids = [str(out.PatientID) for out in outs]
    assert len(set(ids)) == 10 and all(i.startswith("UNKNOWN-") and len(i) == 40 for i in ids)
    assert all(str(out.PatientName) == str(out.PatientID) for out in outs)
    assert "PSN-" not in "".join(ids) and pseudonyms.patient("") not in ids
    # instances of one study stay together (same per-study pseudonym), re-runs are stable
    again = deidentify(_without_patient_id("MR_small.dcm", studies[0], ""), pseudonyms)
    assert again.PatientID == ids[0]
    known = deidentify(_without_patient_id("CT_small.dcm", studies[0], "MRN-1"), pseudonyms)
    assert known.PatientID == pseudonyms.patient("MRN-1")


def test_unknown_patient_is_flagged_in_the_event_headers(tmp_path) -> None:
    ds = _without_patient_id("CT_small.dcm", "1.2.3.4", "")
    event = build_scan_event(encode(ds), pseudonyms=Pseudonymizer(KEY), max_message_bytes=2**24,
                             store=ClaimCheckStore(tmp_path))
    assert ("patient-identity", b"unknown") in event.headers
    known = build_scan_event(Path(get_testdata_file("CT_small.dcm")).read_bytes(),
                             pseudonyms=Pseudonymizer(KEY), max_message_bytes=2**24,
                             store=ClaimCheckStore(tmp_path))
    assert not any(name == "patient-identity" for name, _ in known.headers)


def test_deidentified_output_passes_the_worker_policy(ct: pydicom.Dataset) -> None:
    """What the producers publish satisfies MEDSTREAM_REQUIRE_DEIDENTIFIED; the raw file does not."""
    require_deidentified(deidentify(ct, Pseudonymizer(KEY)))
    with pytest.raises(PoisonMessage) as info:
        require_deidentified(ct)
    assert info.value.reason == "not_deidentified"
