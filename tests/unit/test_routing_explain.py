"""`medstream route explain`: a dry run of the rules on files and folders, without identifiers;
and the skip record's wire contract."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from medstream_tools.soak.fixture_scans import synthetic_radiograph
from worker.cli import main
from worker.contracts import Skip, SkipReason, decode_skip, encode_skip
from worker.errors import PoisonMessage

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "triton_models/routing.yaml"
T = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """CT, MR, SR, a lateral and a PA chest radiograph, a non-DICOM file, in a tree."""
    (tmp_path / "sub").mkdir()
    for name in ("CT_small.dcm", "MR_small.dcm", "test-SR.dcm"):
        shutil.copy(get_testdata_file(name), tmp_path / name)
    for view in ("PA", "LL"):
        ds = synthetic_radiograph(view)
        ds.PatientName, ds.PatientID = "Doe^Jane", "MRN-12345"
        ds.save_as(tmp_path / "sub" / f"chest_{view}.dcm", enforce_file_format=True)
    (tmp_path / "notes.txt").write_text("not DICOM")
    return tmp_path


def test_explain_walks_a_folder_and_says_what_decided(folder: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["route", "explain", str(folder), "--rules", str(RULES)]) == 0
    out = capsys.readouterr().out
    blocks = {line: out.split(line, 1)[1].split("\n/", 1)[0]
              for line in out.splitlines() if line.startswith(str(folder))}
    by_name = {Path(k).name: v for k, v in blocks.items()}
    assert "-> skipped: rule (rule 'ct', line 65: no CT model is deployed)" in by_name["CT_small.dcm"]
    assert "-> skipped: rule (rule 'mr-other-body-part'" in by_name["MR_small.dcm"]
    assert "-> skipped: non_image" in by_name["test-SR.dcm"]
    assert "SOPClassUID=Comprehensive SR Storage" in by_name["test-SR.dcm"]
    assert "-> chest_xray_pneumonia (rule 'chest-radiograph-frontal', line 32)" in by_name["chest_PA.dcm"]
    assert "rule 'chest-radiograph-other-view'" in by_name["chest_LL.dcm"]
    assert "not readable as DICOM" in by_name["notes.txt"]
    assert "summary: " in out and "1 -> chest_xray_pneumonia" in out
    assert "Doe" not in out and "MRN" not in out


def test_explain_says_why_no_rule_matched(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ds = synthetic_radiograph("PA")
    ds.Modality = "XA"
    ds.SeriesDescription = "Jane Doe angio"
    path = tmp_path / "xa.dcm"
    ds.save_as(path, enforce_file_format=True)
    assert main(["route", "explain", str(path), "--rules", str(RULES)]) == 0
    out = capsys.readouterr().out
    assert "-> skipped: no_route" in out
    assert "rule 'chest-radiograph-frontal' (line 32): Modality is 'XA', wanted Modality in [CR, DX]" in out
    assert "rule 'ignore-localizers' (line 15): ImageType is 'ORIGINAL\\\\PRIMARY'" in out
    assert "Jane" not in out


def test_explain_refuses_a_bad_rules_file(tmp_path: Path, folder: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nrules:\n  - name: a\n    when: {Modalty: CT}\n    skip: x\n")
    assert main(["route", "explain", str(folder), "--rules", str(bad)]) == 2
    assert "bad.yaml:4: unknown DICOM keyword 'Modalty'" in capsys.readouterr().err


def test_skip_records_round_trip_and_are_validated() -> None:
    skip = Skip("1.2.3", "scan", "pseudo-1", SkipReason.RULE,
                {"name": "ct", "line": 65, "text": "no CT model"}, {"Modality": "CT"}, T, T, 1.5,
                extra={"study_uid": "1.2", "sop_uid": "1.2.3"})
    assert decode_skip(encode_skip(skip)) == skip
    wire = encode_skip(skip).replace(b'"reason":"rule"', b'"reason":"bored"')
    with pytest.raises(PoisonMessage, match="field 'reason' must be one of"):
        decode_skip(wire)


def test_header_attributes_survive_malformed_values() -> None:
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import Tag

    from worker.routing.attributes import dataset_lookup, reported

    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"), stop_before_pixels=True)
    for keyword, vr, raw in (("SliceThickness", "DS", b"not-a-number"), ("Rows", "US", b"\x01")):
        tag = Tag(keyword)
        ds[tag] = RawDataElement(tag, vr, len(raw), raw, 0, False, True)
    lookup = dataset_lookup(ds)
    assert lookup("SliceThickness") in ((), ("not-a-number",)) and lookup("Rows") == ()
    assert reported(lookup)["Modality"] == "CT" and lookup("NoSuchKeyword") == ()
