"""Pixel decoders per transfer syntax, the image SOP-class allow-list and the de-identification
policy, through the worker's scan `prepare` (worker.scan_routing.prepare_scan, every image routed) and the producers'
checks. Real pydicom / pydicom-data test files; no services.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import get_decoder
from pydicom.uid import (
    HEVCMP51,
    UID,
    AllTransferSyntaxes,
    EncapsulatedPDFStorage,
    ExplicitVRLittleEndian,
    generate_uid,
)

from producers.claimcheck import ClaimCheckStore
from producers.deid.dicom import deidentify
from producers.deid.pseudonym import Pseudonymizer
from producers.scan_events import build_scan_event, decodable_syntax, encode
from tests.support.routing import prepare_routed
from worker.errors import PoisonMessage
from worker.scan_input import ClaimCheckPolicy
from worker.sop_classes import IMAGE_STORAGE

POLICY = ClaimCheckPolicy(None, 10**8)
KEY = b"unit-test-key-0123456789"

#: one real file per transfer syntax with a sample file (pydicom 3.0 and pydicom-data)
BY_SYNTAX = {
    "1.2.840.10008.1.2": "MR_small_implicit.dcm",
    "1.2.840.10008.1.2.1": "CT_small.dcm",
    "1.2.840.10008.1.2.2": "MR_small_bigendian.dcm",
    "1.2.840.10008.1.2.1.99": "image_dfl.dcm",
    "1.2.840.10008.1.2.5": "MR_small_RLE.dcm",
    "1.2.840.10008.1.2.4.50": "SC_rgb_jpeg_dcmtk.dcm",
    "1.2.840.10008.1.2.4.51": "JPGExtended.dcm",  # 12-bit JPEG Extended
    "1.2.840.10008.1.2.4.70": "JPGLosslessP14SV1_1s_1f_8b.dcm",
    "1.2.840.10008.1.2.4.80": "MR_small_jpeg_ls_lossless.dcm",
    "1.2.840.10008.1.2.4.81": "JPEGLSNearLossless_16.dcm",
    "1.2.840.10008.1.2.4.90": "MR_small_jp2klossless.dcm",
    "1.2.840.10008.1.2.4.91": "JPEG2000.dcm",
}
NON_IMAGES = ("rtdose.dcm", "rtplan.dcm", "liver.dcm", "test-SR.dcm", "waveform_ecg.dcm")


def raw(name: str) -> bytes:
    return Path(get_testdata_file(name)).read_bytes()


def outcome(value: bytes, **kwargs: bool) -> str:
    try:
        _, tensor = prepare_routed(value, POLICY, **kwargs)
    except PoisonMessage as exc:
        return exc.reason
    assert tensor.shape == (1, 128, 128) and np.isfinite(tensor).all()
    return "served"


def test_every_transfer_syntax_pydicom_can_decode_has_its_decoder_installed() -> None:
    supported = []
    for syntax in AllTransferSyntaxes:
        try:
            decoder = get_decoder(syntax)
        except NotImplementedError:  # pydicom has no decoder at all (video, JPEG-XL)
            continue
        supported.append(syntax)
        assert decoder.is_available, f"{syntax.name}: {decoder.missing_dependencies}"
        assert decodable_syntax(syntax)
    assert len(supported) >= 16 and not decodable_syntax(HEVCMP51)


@pytest.mark.parametrize(("syntax", "name"), sorted(BY_SYNTAX.items()))
def test_one_real_file_per_transfer_syntax_is_served(syntax: str, name: str) -> None:
    data = raw(name)
    assert pydicom.dcmread(io.BytesIO(data)).file_meta.TransferSyntaxUID == syntax
    assert outcome(data) == "served"


def _encapsulated_pdf() -> bytes:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = EncapsulatedPDFStorage, generate_uid()
    ds.StudyInstanceUID, ds.Modality = generate_uid(), "DOC"
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocument = b"%PDF-1.4\n%%EOF\n"
    return encode(ds)


@pytest.mark.parametrize("name", NON_IMAGES)
def test_non_image_sop_classes_are_refused_before_pixel_access(name: str) -> None:
    ds = pydicom.dcmread(get_testdata_file(name))
    assert outcome(raw(name)) == "non_image"
    if "PixelData" in ds:  # a decompression bomb would be `oversize` if pixels were looked at
        ds.Rows = ds.Columns = 65535
        ds.NumberOfFrames = "1000"
        assert outcome(encode(ds)) == "non_image"


def test_pdf_private_and_missing_sop_classes_are_not_images() -> None:
    assert outcome(_encapsulated_pdf()) == "non_image"
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.113619.4.27"  # GE private
    assert outcome(encode(ds)) == "non_image"
    del ds.SOPClassUID
    del ds.file_meta.MediaStorageSOPClassUID
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=False)
    assert outcome(buffer.getvalue()) == "non_image"


def test_the_allow_list_holds_clinical_image_classes_only() -> None:
    names = {UID(uid).name for uid in IMAGE_STORAGE}
    for wanted in ("CT Image Storage", "Ultrasound Multi-frame Image Storage",
                   "Digital X-Ray Image Storage - For Presentation", "Enhanced MR Image Storage",
                   "Secondary Capture Image Storage", "VL Photographic Image Storage"):
        assert wanted in names
    for refused in ("RT Dose Storage", "Segmentation Storage", "Comprehensive SR Storage",
                    "Encapsulated PDF Storage", "12-lead ECG Waveform Storage", "Raw Data Storage",
                    "Key Object Selection Document Storage", "DICOS CT Image Storage",
                    "Grayscale Softcopy Presentation State Storage", "Parametric Map Storage"):
        assert refused not in names


def test_deidentification_policy() -> None:
    """Required: raw instances are refused, what the producers publish is served."""
    data = raw("CT_small.dcm")
    assert outcome(data, require_deid=True) == "not_deidentified"
    assert outcome(data, require_deid=False) == "served"
    published = encode(deidentify(pydicom.dcmread(io.BytesIO(data)), Pseudonymizer(KEY)))
    assert outcome(published, require_deid=True) == "served"
    partial = pydicom.dcmread(io.BytesIO(data))
    partial.PatientIdentityRemoved = "YES"  # the flag without a method is not enough
    assert outcome(encode(partial), require_deid=True) == "not_deidentified"


def test_producers_refuse_pixel_data_no_decoder_handles(tmp_path: Path) -> None:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.file_meta.TransferSyntaxUID = HEVCMP51
    ds.PixelData = pydicom.encaps.encapsulate([b"\x00\x00\x00\x01" * 4])
    ds["PixelData"].VR = "OB"
    with pytest.raises(PoisonMessage) as info:
        build_scan_event(encode(ds), pseudonyms=Pseudonymizer(KEY), max_message_bytes=2**24,
                         store=ClaimCheckStore(tmp_path))
    assert info.value.reason == "unsupported_transfer_syntax" and "HEVC" in str(info.value)


def test_producers_accept_native_subsampled_ycbcr_and_bit_packed_pixels(tmp_path: Path) -> None:
    """YBR_FULL_422 stores 2 bytes a pixel and SEG 1 bit: neither is `truncated_pixel_data`."""
    for name in ("SC_ybr_full_422_uncompressed.dcm", "liver.dcm"):
        event = build_scan_event(raw(name), pseudonyms=Pseudonymizer(KEY),
                                 max_message_bytes=2**24, store=ClaimCheckStore(tmp_path))
        assert event.value.startswith(b"\0" * 128 + b"DICM")
    ds = pydicom.dcmread(get_testdata_file("SC_ybr_full_422_uncompressed.dcm"))
    ds.PixelData = ds.PixelData[:-2]
    with pytest.raises(PoisonMessage) as info:
        build_scan_event(encode(ds), pseudonyms=None, max_message_bytes=2**24,
                         store=ClaimCheckStore(tmp_path))
    assert info.value.reason == "truncated_pixel_data"
