"""The SR builder (TID 1500 content, deterministic UIDs, references) and C-STORE statuses."""

from __future__ import annotations

from pathlib import Path

import pytest
from delivery_samples import CT_IMAGE, identity_map, study_report
from pydicom import Dataset

from medstream_delivery.dicom_send import classify
from medstream_delivery.identity import PseudonymsOnly
from medstream_delivery.keys import sr_instance_uid, sr_series_uid
from medstream_delivery.outcomes import Rejected, TargetUnavailable
from medstream_delivery.sr_build import structured_report

COMPREHENSIVE_3D_SR = "1.2.840.10008.5.1.4.1.1.88.34"


def _items(ds: Dataset) -> list[Dataset]:
    out = []
    for item in ds.get("ContentSequence", []):
        out.append(item)
        out.extend(_items(item))
    return out


def _derivation(item: Dataset) -> str:
    (derivation,) = [i.ConceptCodeSequence[0].CodeMeaning for i in item.ContentSequence
                     if i.ConceptNameCodeSequence[0].CodeValue == "121401"]  # Derivation
    return derivation


def test_sr_uids_are_deterministic_per_revision() -> None:
    sr = structured_report(study_report(), PseudonymsOnly())
    assert sr.SOPClassUID == COMPREHENSIVE_3D_SR
    assert sr.SOPInstanceUID == sr_instance_uid(study_report())
    assert sr.SeriesInstanceUID == sr_series_uid(study_report())
    amended = structured_report(study_report(revision=2, status="amended"), PseudonymsOnly())
    assert amended.SeriesInstanceUID == sr.SeriesInstanceUID
    assert amended.SOPInstanceUID != sr.SOPInstanceUID
    assert amended.InstanceNumber == 2


def test_sr_references_the_source_study_and_instances() -> None:
    sr = structured_report(study_report(), PseudonymsOnly())
    assert sr.StudyInstanceUID == "2.25.1001"
    assert sr.PatientID == study_report().patient
    (study,) = sr.CurrentRequestedProcedureEvidenceSequence
    (series,) = study.ReferencedSeriesSequence
    assert series.SeriesInstanceUID == "2.25.2001"
    assert {(i.ReferencedSOPClassUID, i.ReferencedSOPInstanceUID)
            for i in series.ReferencedSOPSequence} == {(CT_IMAGE, "2.25.3001"),
                                                       (CT_IMAGE, "2.25.3002")}


def test_sr_content_is_a_measurement_report_with_the_finding_and_probabilities() -> None:
    sr = structured_report(study_report(), PseudonymsOnly())
    assert sr.ConceptNameCodeSequence[0].CodeValue == "126000"  # Imaging Measurement Report
    assert sr.CompletionFlag == "COMPLETE" and sr.VerificationFlag == "UNVERIFIED"
    items = _items(sr)
    finding = [i for i in items if i.ConceptNameCodeSequence[0].CodeValue == "121071"]
    assert [f.ConceptCodeSequence[0].CodeValue for f in finding] == ["pneumonia"]
    numbers = {(i.ConceptNameCodeSequence[0].CodeValue, _derivation(i)):
               float(i.MeasuredValueSequence[0].NumericValue) for i in items if i.ValueType == "NUM"}
    assert numbers == {("normal", "Maximum"): 0.12, ("normal", "Mean"): 0.1,
                       ("pneumonia", "Maximum"): 0.88, ("pneumonia", "Mean"): 0.7}
    algorithm = [i.TextValue for i in items if i.ValueType == "TEXT"
                 and i.ConceptNameCodeSequence[0].CodeMeaning.startswith("Algorithm")]
    assert algorithm == ["scan_cnn", "1+sha256.0123456789ab"]


def test_sr_with_the_identity_map_carries_the_hospital_identifiers(tmp_path: Path) -> None:
    sr = structured_report(study_report(), identity_map(tmp_path / "ids.sqlite"))
    assert (sr.PatientID, sr.AccessionNumber) == ("MRN-4711", "ACC-42")
    assert sr.StudyInstanceUID == "1.2.826.0.1.3680043.8.498.1"
    (study,) = sr.CurrentRequestedProcedureEvidenceSequence
    assert study.ReferencedSeriesSequence[0].SeriesInstanceUID == "1.2.826.0.1.3680043.8.498.2"
    assert sr.SOPInstanceUID == sr_instance_uid(study_report())  # still ours, deterministic


def test_a_report_without_named_instances_is_a_study_level_sr() -> None:
    sr = structured_report(study_report(images=()), PseudonymsOnly())
    assert sr.StudyInstanceUID == "2.25.1001"
    assert "CurrentRequestedProcedureEvidenceSequence" not in sr
    assert not [i for i in _items(sr) if i.ValueType == "IMAGE"]


def _status(code: int | None, comment: str = "") -> Dataset:
    ds = Dataset()
    if code is not None:
        ds.Status = code
    if comment:
        ds.ErrorComment = comment
    return ds


@pytest.mark.parametrize("code", [0x0000, 0xB000, 0xB007])
def test_success_and_warning_statuses_are_delivered(code: int) -> None:
    assert classify(_status(code)) == code


@pytest.mark.parametrize("code", [None, 0xA700, 0xA7FF])
def test_no_status_or_out_of_resources_is_retried(code: int | None) -> None:
    with pytest.raises(TargetUnavailable):
        classify(_status(code))


@pytest.mark.parametrize("code", [0xA900, 0xC000, 0x0122])
def test_other_failures_are_rejections_with_the_comment(code: int) -> None:
    with pytest.raises(Rejected, match=f"0x{code:04X} bad dataset"):
        classify(_status(code, "bad dataset"))
