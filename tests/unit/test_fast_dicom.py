"""The fast DICOM path equals the general one (within 1e-5) on every test file the worker accepts."""

from __future__ import annotations

import functools
import io
import warnings

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, RLELossless

from tests.support.dicom_files import pydicom_files, quietly
from worker.errors import PoisonMessage
from worker.preprocess.fast_dicom import fast_tensor, resize32, scan_tensor
from worker.preprocess.scan import dicom_to_tensor, resize
from worker.scan_input import read_dicom

TOLERANCE = 1e-5


@functools.cache
def accepted() -> list[tuple[str, bytes]]:
    """Every pydicom test file whose general path gives a tensor today."""
    out = []
    with quietly():
        for name, data in pydicom_files():
            try:
                dicom_to_tensor(read_dicom(data))
            except Exception:  # noqa: BLE001, S112 - refused or undecodable today: not compared
                continue
            out.append((name, data))
    return out


def test_fast_path_matches_general_path_on_every_accepted_file() -> None:
    fast = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, data in accepted():
            expected = dicom_to_tensor(read_dicom(data))
            got = scan_tensor(read_dicom(data))
            assert got.shape == expected.shape == (1, 128, 128), name
            assert got.dtype == np.float32, name
            assert float(np.abs(got - expected).max()) <= TOLERANCE, name
            fast += fast_tensor(read_dicom(data)) is not None
    # the corpus holds uncompressed grey/RGB and RLE files: most must take the fast path
    assert len(accepted()) > 100 and fast > 50


def _syntax_count(syntax: str) -> int:
    names = []
    for name, data in accepted():
        ds = read_dicom(data)
        if ds.file_meta.TransferSyntaxUID == syntax and fast_tensor(ds) is not None:
            names.append(name)
    return len(names)


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ExplicitVRBigEndian, RLELossless])
def test_each_handled_syntax_is_exercised(syntax: str) -> None:
    assert _syntax_count(syntax) >= 1


def _ct() -> pydicom.Dataset:
    return pydicom.dcmread(get_testdata_file("CT_small.dcm"))


def _reread(ds: pydicom.Dataset) -> pydicom.Dataset:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return read_dicom(buf.getvalue())


def test_unused_high_bits_are_ignored_like_pydicom() -> None:
    ds = _ct()
    ds.BitsStored = 12
    arr = np.frombuffer(ds.PixelData, "<i2").copy()
    arr |= np.int16(0x7000)  # garbage in the 3 unused bits (bit 15 is the sign in 16 bits)
    ds.PixelData = arr.tobytes()
    ds = _reread(ds)
    fast = fast_tensor(ds)
    assert fast is not None
    assert float(np.abs(fast - dicom_to_tensor(ds)).max()) <= TOLERANCE


def test_big_frames_use_the_lookup_table_and_monochrome1_inverts() -> None:
    ds = _ct()
    rng = np.random.default_rng(0)
    ds.Rows, ds.Columns = 600, 700
    ds.PixelData = rng.integers(-1000, 3000, (600, 700), dtype=np.int16).tobytes()
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.WindowCenter, ds.WindowWidth = 40, 400
    ds = _reread(ds)
    fast = fast_tensor(ds)
    assert fast is not None
    assert float(np.abs(fast - dicom_to_tensor(ds)).max()) <= TOLERANCE


@pytest.mark.parametrize("change", ["modality_lut", "short_pixels", "empty_slope", "bits32"])
def test_unusual_inputs_take_the_general_path(change: str) -> None:
    ds = _ct()
    if change == "modality_lut":
        item = pydicom.Dataset()
        item.LUTDescriptor = [256, 0, 16]
        item.LUTData = list(range(256))
        ds.ModalityLUTSequence = [item]
    elif change == "short_pixels":
        ds.PixelData = ds.PixelData[:100]
    elif change == "empty_slope":
        ds.RescaleSlope = None
    else:
        ds.BitsAllocated = 32
    assert fast_tensor(ds) is None


def test_poison_is_still_named_by_the_general_path() -> None:
    ds = _ct()
    ds.PixelData = ds.PixelData[:100]
    with pytest.raises(PoisonMessage):
        scan_tensor(ds)


@pytest.mark.parametrize("shape", [(128, 128), (512, 512), (1955, 1841), (97, 300)])
def test_banded_float32_resize_matches_the_dense_float64_one(shape: tuple[int, int]) -> None:
    image = np.random.default_rng(1).random(shape)
    dense = resize(image)
    banded = resize32(image.astype(np.float32))
    assert banded.dtype == np.float32
    assert float(np.abs(banded - dense).max()) <= TOLERANCE
