"""worker.preprocess.scan: pixels/DICOM -> float32 [1, 128, 128], and its poison cases."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import apply_color_lut, convert_color_space
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from worker.errors import PoisonMessage
from worker.preprocess.scan import (
    IMAGE_SIZE,
    decode_frame,
    dicom_to_tensor,
    pixels_to_tensor,
    resize,
    to_display,
)


def make_dataset(pixels: np.ndarray, *, photometric: str = "MONOCHROME2", frames: int = 1,
                 slope: float | None = None, intercept: float | None = None,
                 window: tuple[float, float] | None = None) -> Dataset:
    """An in-memory DICOM image with uncompressed pixel data."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPInstanceUID = generate_uid()
    colour = photometric == "RGB"
    ds.SamplesPerPixel = 3 if colour else 1
    ds.PhotometricInterpretation = photometric
    if colour:
        ds.PlanarConfiguration = 0
    if frames > 1:
        ds.NumberOfFrames = frames
    shape = pixels.shape[1:] if frames > 1 else pixels.shape
    ds.Rows, ds.Columns = shape[0], shape[1]
    ds.BitsAllocated = ds.BitsStored = pixels.dtype.itemsize * 8
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if pixels.dtype.kind == "i" else 0
    if slope is not None:
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    ds.PixelData = pixels.tobytes()
    return ds


def gradient(h: int = 64, w: int = 48) -> np.ndarray:
    return (np.arange(h)[:, None] * 10 + np.arange(w)[None, :]).astype(np.uint16)


def test_pixels_to_tensor_shape_range_dtype() -> None:
    out = pixels_to_tensor(gradient(300, 200))
    assert out.shape == (1, IMAGE_SIZE, IMAGE_SIZE) and out.dtype == np.float32
    assert out.min() == pytest.approx(0.0, abs=0.02) and out.max() == pytest.approx(1.0, abs=0.02)


def test_window_clips_and_scales() -> None:
    pixels = np.full((32, 32), 100.0)
    pixels[:16] = -1000.0
    out = pixels_to_tensor(pixels, window=(50.0, 100.0))
    assert np.allclose(out[0, :60], 0.0) and np.allclose(out[0, 70:], 1.0)


def test_constant_image_is_zeros_not_nan() -> None:
    out = pixels_to_tensor(np.full((10, 10), 7, dtype=np.int16))
    assert np.array_equal(out, np.zeros_like(out))


def test_rgb_pixels_use_luminance() -> None:
    grey = gradient().astype(np.float64)
    rgb = np.stack([grey, grey, grey], axis=-1)
    assert np.allclose(pixels_to_tensor(rgb), pixels_to_tensor(grey), atol=1e-6)


def test_resize_preserves_constant_and_mean() -> None:
    assert np.allclose(resize(np.full((1000, 700), 3.0)), 3.0)
    img = np.random.default_rng(0).random((512, 512))
    assert resize(img).mean() == pytest.approx(img.mean(), abs=0.01)


@pytest.mark.parametrize("bad", [np.zeros((4, 4, 4, 4)), np.zeros(10), np.zeros((1, 50))])
def test_bad_shapes_are_poison(bad: np.ndarray) -> None:
    with pytest.raises(PoisonMessage) as info:
        pixels_to_tensor(bad)
    assert info.value.reason == "shape"


def test_non_finite_pixels_are_poison() -> None:
    pixels = np.ones((8, 8))
    pixels[2, 2] = np.nan
    with pytest.raises(PoisonMessage) as info:
        pixels_to_tensor(pixels)
    assert info.value.reason == "non_finite"


def test_invalid_window_is_poison() -> None:
    with pytest.raises(PoisonMessage):
        pixels_to_tensor(gradient(), window=(40.0, 0.0))


def test_dicom_matches_pixels_path() -> None:
    pixels = gradient()
    assert np.array_equal(dicom_to_tensor(make_dataset(pixels)), pixels_to_tensor(pixels))


def test_monochrome1_is_inverted() -> None:
    pixels = gradient()
    mono1 = dicom_to_tensor(make_dataset(pixels, photometric="MONOCHROME1"))
    mono2 = dicom_to_tensor(make_dataset(pixels))
    assert np.allclose(mono1, 1.0 - mono2, atol=1e-6)


def test_rescale_applied_before_window() -> None:
    raw = np.full((32, 32), 1000, dtype=np.uint16)
    raw[:16] = 0  # rescaled: -1024 HU (air) vs -24 HU
    ds = make_dataset(raw, slope=1.0, intercept=-1024.0, window=(-24.0, 2.0))
    out = dicom_to_tensor(ds)
    assert np.allclose(out[0, :60], 0.0) and np.allclose(out[0, 70:], 0.5, atol=1e-6)


def test_multiframe_uses_middle_frame() -> None:
    frames = np.stack([np.zeros((32, 32), np.uint16), gradient(32, 32), np.zeros((32, 32), np.uint16)])
    out = dicom_to_tensor(make_dataset(frames, frames=3))
    assert np.array_equal(out, pixels_to_tensor(gradient(32, 32)))


def test_rgb_dicom_is_luminance() -> None:
    grey = gradient(32, 32).astype(np.uint8)
    rgb = np.stack([grey, grey, grey], axis=-1)
    out = dicom_to_tensor(make_dataset(rgb, photometric="RGB"))
    assert np.allclose(out, pixels_to_tensor(grey), atol=1e-6)


def _tensor(name: str) -> np.ndarray:
    return dicom_to_tensor(pydicom.dcmread(get_testdata_file(name)))


@pytest.mark.parametrize("name", ["OBXXXX1A.dcm", "OBXXXX1A_rle_2frame.dcm", "gdcm-US-ALOKA-16.dcm"])
def test_palette_colour_goes_through_the_palette(name: str) -> None:
    """Issue 12: PALETTE COLOR ultrasound was fed as palette indices."""
    ds = pydicom.dcmread(get_testdata_file(name))
    indices = ds.pixel_array
    indices = indices[len(indices) // 2] if indices.ndim == 3 else indices
    shown = apply_color_lut(indices, ds)
    assert np.allclose(dicom_to_tensor(ds), pixels_to_tensor(shown), atol=1e-6)
    assert not np.allclose(dicom_to_tensor(ds), pixels_to_tensor(indices), atol=0.05)


@pytest.mark.parametrize(
    "name",
    ["SC_ybr_full_uncompressed.dcm", "SC_ybr_full_422_uncompressed.dcm",
     "SC_rgb_dcmtk_+eb+cy+np.dcm", "SC_rgb_jpeg_dcmtk.dcm", "SC_rgb_rle.dcm", "SC_rgb_gdcm_KY.dcm"],
)
def test_ycbcr_and_compressed_colour_match_the_rgb_original(name: str) -> None:
    """The same picture stored as RGB, YBR_FULL(_422), JPEG, RLE or JPEG 2000 gives one tensor
    (within lossy-compression error)."""
    assert np.abs(_tensor(name) - _tensor("SC_rgb.dcm")).max() < 0.05


def test_ycbcr_left_by_the_decoder_is_converted_and_other_models_refused() -> None:
    ds = pydicom.dcmread(get_testdata_file("SC_rgb.dcm"))
    rgb = ds.pixel_array
    ybr = convert_color_space(rgb, "RGB", "YBR_FULL")
    assert np.abs(to_display(ybr, "YBR_FULL", ds).astype(int) - rgb).max() <= 2
    with pytest.raises(PoisonMessage) as info:
        to_display(rgb, "HSV", ds)
    assert info.value.reason == "pixel_decode"


def test_only_the_middle_frame_is_decoded() -> None:
    ds = pydicom.dcmread(get_testdata_file("emri_small.dcm"))
    frames = ds.pixel_array
    assert decode_frame(ds).shape == frames.shape[1:]
    assert np.array_equal(decode_frame(ds), frames[len(frames) // 2])


def test_missing_pixel_data_is_poison() -> None:
    ds = make_dataset(gradient())
    del ds.PixelData
    with pytest.raises(PoisonMessage) as info:
        dicom_to_tensor(ds)
    assert info.value.reason == "no_pixel_data"


def test_truncated_pixel_data_is_poison() -> None:
    ds = make_dataset(gradient())
    ds.PixelData = ds.PixelData[:100]
    with pytest.raises(PoisonMessage) as info:
        dicom_to_tensor(ds)
    assert info.value.reason == "pixel_decode"


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm", "US1_J2KR.dcm", "emri_small.dcm"])
def test_real_dicom_files(name: str) -> None:
    out = dicom_to_tensor(pydicom.dcmread(get_testdata_file(name)))
    assert out.shape == (1, IMAGE_SIZE, IMAGE_SIZE) and np.isfinite(out).all()
    assert 0.0 <= out.min() < out.max() <= 1.0


def test_worker_preprocessing_needs_neither_torch_nor_pil() -> None:
    """torch is never loaded; PIL is never imported by our code (pydicom may use it if present)."""
    import subprocess
    import sys
    from pathlib import Path

    import worker.preprocess

    code = "import sys, worker.preprocess, medstream_training.cli; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
    for source in Path(worker.preprocess.__file__).parent.glob("*.py"):
        text = source.read_text()
        for banned in ("import PIL", "from PIL", "import torch", "from torch"):
            assert banned not in text, (source.name, banned)
