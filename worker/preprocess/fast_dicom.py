"""The fast path from a parsed DICOM dataset to the CNN input, for the common cases.

`scan_tensor(ds)` is `dicom_to_tensor(ds)` (worker/preprocess/scan.py) made cheaper where it
is safe: greyscale or 8-bit RGB, 8/16 bits allocated, uncompressed (little or big endian) or
RLE Lossless, Rescale Slope/Intercept or no modality transform. It reads only the frame the
CNN sees straight from PixelData (`np.frombuffer`, the right dtype, endianness and planar
configuration; RLE decodes that frame alone), applies the unused-bits correction, the modality
rescale and the window in one table lookup per pixel (the table is today's float64 arithmetic,
built once per 2^bits patterns) and resizes in float32 with banded matrices (only the input
rows/columns a block of outputs depends on). Outputs stay within 1e-5 of `dicom_to_tensor`
(tests/unit/test_fast_dicom.py checks every pydicom test file the worker accepts). Anything
else, and anything odd (a value it cannot read, a short buffer), takes the general path,
which also names the problem when the input is poison.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np
import pydicom
from pydicom.encaps import get_frame
from pydicom.pixels.decoders.rle import _rle_decode_frame  # pinned: pydicom 3.0.*
from pydicom.uid import UID, RLELossless

from worker.preprocess.scan import (
    IMAGE_SIZE,
    MAX_DECODED_BYTES,
    _resize_matrix,
    dataset_window,
    dicom_to_tensor,
)

_NATIVE = {pydicom.uid.ImplicitVRLittleEndian: "<", pydicom.uid.ExplicitVRLittleEndian: "<",
           pydicom.uid.ExplicitVRBigEndian: ">"}
_LUMA = np.array([0.299, 0.587, 0.114])
_BLOCK = 16  # output rows per banded matrix product
_TABLE_MIN_PIXELS = 4  # use a lookup table when the frame has 4x more pixels than it has entries
_LOOKUP_ROWS = 64


class Layout(NamedTuple):
    """How the pixels of one frame lie in PixelData."""

    rows: int
    columns: int
    samples: int
    bits: int  # allocated: 8 or 16
    stored: int
    signed: bool
    planar: bool
    frames: int


def _layout(ds: pydicom.Dataset) -> Layout | None:
    """The frame layout when the fast path handles `ds`, else None."""
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    photometric = str(ds.get("PhotometricInterpretation", "") or "")
    bits, stored = int(ds.BitsAllocated), int(ds.BitsStored)
    wanted = ("MONOCHROME1", "MONOCHROME2") if samples == 1 else ("RGB",)
    if samples not in (1, 3) or photometric not in wanted or bits not in (8, 16):
        return None
    if samples == 3 and bits != 8:
        return None
    if not 1 <= stored <= bits or int(ds.PixelRepresentation) not in (0, 1):
        return None
    layout = Layout(int(ds.Rows), int(ds.Columns), samples, bits, stored,
                    int(ds.PixelRepresentation) == 1,
                    samples == 3 and int(ds.get("PlanarConfiguration", 0) or 0) == 1,
                    int(ds.get("NumberOfFrames", 1) or 1))
    if min(layout.rows, layout.columns) < 2 or layout.frames < 1:
        return None
    if layout.rows * layout.columns * samples * (bits // 8) * layout.frames > MAX_DECODED_BYTES:
        return None
    return layout


def _frame_bytes(ds: pydicom.Dataset, layout: Layout,
                 syntax: UID) -> tuple[bytes | memoryview, str] | None:
    """(bytes of the middle frame, byte order) or None when PixelData is not as declared."""
    size = layout.rows * layout.columns * layout.samples * layout.bits // 8
    index = layout.frames // 2
    data = ds.PixelData
    if syntax == RLELossless:
        frame = get_frame(data, index, number_of_frames=layout.frames)
        decoded = _rle_decode_frame(frame, layout.rows, layout.columns, layout.samples,
                                    layout.bits)
        return (bytes(decoded), "<") if len(decoded) == size else None
    if syntax not in _NATIVE or len(data) < size * layout.frames:
        return None
    if _NATIVE[syntax] == ">" and layout.bits == 8:
        return None  # 8-bit values in big-endian OW words come byte-swapped in pairs
    return memoryview(data)[index * size:(index + 1) * size], _NATIVE[syntax]


def _frame(ds: pydicom.Dataset, layout: Layout) -> np.ndarray | None:
    """The middle frame's stored values as read (unused bits not corrected), (H, W[, 3])."""
    syntax = ds.file_meta.TransferSyntaxUID
    found = _frame_bytes(ds, layout, syntax)
    if found is None:
        return None
    data, order = found
    kind = "i" if layout.signed else "u"
    arr = np.frombuffer(data, dtype=f"{order}{kind}{layout.bits // 8}")
    if order == ">":
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if layout.samples == 1:
        return arr.reshape(layout.rows, layout.columns)
    planar = layout.planar or syntax == RLELossless  # RLE frames decode colour-by-plane
    if planar:
        return np.moveaxis(arr.reshape(3, layout.rows, layout.columns), 0, -1)
    return arr.reshape(layout.rows, layout.columns, 3)


def _corrected(arr: np.ndarray, stored: int) -> np.ndarray:
    """As pydicom: the unused high bits dropped (unsigned) or sign-extended (signed)."""
    shift = arr.dtype.itemsize * 8 - stored
    return arr if shift == 0 else np.right_shift(np.left_shift(arr, shift), shift)


def _lookup(table: np.ndarray, raw: np.ndarray) -> np.ndarray:
    """table[raw] by blocks of rows (the indices of a block stay in cache)."""
    out = np.empty(raw.shape, np.float32)
    index = raw.view(f"u{raw.dtype.itemsize}")
    for start in range(0, raw.shape[0], _LOOKUP_ROWS):
        rows = slice(start, start + _LOOKUP_ROWS)
        np.take(table, index[rows], out=out[rows])
    return out


def _rescale(ds: pydicom.Dataset) -> tuple[float, float] | None | bool:
    """(slope, intercept) as pydicom applies them, None for no rescale, False: general path."""
    if ds.get("ModalityLUTSequence"):
        return False
    if "RescaleSlope" not in ds or "RescaleIntercept" not in ds:
        return None
    slope, intercept = ds.RescaleSlope, ds.RescaleIntercept
    if not isinstance(slope, float) or not isinstance(intercept, float):
        return False  # empty or multi-valued: the general path names the problem
    return float(slope), float(intercept)


def _scale(values: np.ndarray, rescale: tuple[float, float] | None, low: float,
           width: float) -> np.ndarray:
    """dicom_to_tensor's float64 arithmetic: modality rescale, then (v - low) / width in [0, 1]."""
    if rescale is not None:
        values = values.astype(np.float64) * rescale[0]
        values += rescale[1]
    scaled = values.astype(np.float64)
    if width == 0:
        return np.zeros_like(scaled)
    scaled -= low
    scaled /= width
    return np.clip(scaled, 0.0, 1.0, out=scaled)


@functools.lru_cache(maxsize=32)
def _table(dtype: str, stored: int, rescale: tuple[float, float] | None, low: float,
           width: float) -> np.ndarray:
    """float32 [0, 1] value of every bit pattern of `dtype` (corrected, rescaled, windowed)."""
    bits = np.dtype(dtype).itemsize * 8
    patterns = _corrected(np.arange(2**bits, dtype=f"u{bits // 8}").view(dtype), stored)
    table = _scale(patterns, rescale, low, width).astype(np.float32)
    table.flags.writeable = False
    return table


@functools.lru_cache(maxsize=64)
def _bands(n_in: int, n_out: int) -> tuple[tuple[int, int, np.ndarray], ...]:
    """The resize matrix in blocks of output rows: (first input, end input, float32 weights)."""
    weights = _resize_matrix(n_in, n_out)
    out = []
    for start in range(0, n_out, _BLOCK):
        block = weights[start:start + _BLOCK]
        used = np.flatnonzero(block.any(axis=0))
        lo, hi = int(used[0]), int(used[-1]) + 1
        out.append((lo, hi, np.ascontiguousarray(block[:, lo:hi], dtype=np.float32)))
    return tuple(out)


def _resize_rows(image: np.ndarray, size: int) -> np.ndarray:
    """Resize axis 0 to `size` (float32 banded product); the same size is returned as is."""
    if image.shape[0] == size:
        return image
    out = np.empty((size, image.shape[1]), np.float32)
    for start, (lo, hi, block) in zip(range(0, size, _BLOCK), _bands(image.shape[0], size)):
        np.matmul(block, image[lo:hi], out=out[start:start + len(block)])
    return out


def resize32(image: np.ndarray, size: int = IMAGE_SIZE) -> np.ndarray:
    """float32 image -> size x size, the same antialiased bilinear filter as scan.resize."""
    return _resize_rows(_resize_rows(image, size).T, size).T


def _grey_tensor(ds: pydicom.Dataset, frame: np.ndarray, layout: Layout) -> np.ndarray | None:
    rescale = _rescale(ds)
    if rescale is False:
        return None
    window = dataset_window(ds)
    if window is not None:
        low, width = window[0] - window[1] / 2.0, window[1]
    else:  # the image's own range, after the (monotonic) rescale
        values = _corrected(frame, layout.stored)
        ends = np.array([values.min(), values.max()], dtype=np.float64)
        if rescale is not None:
            ends = ends * rescale[0] + rescale[1]
        low, width = float(ends.min()), float(ends.max() - ends.min())
    if frame.size >= _TABLE_MIN_PIXELS * 2**layout.bits:
        image = _lookup(_table(frame.dtype.str, layout.stored, rescale, low, width), frame)
    else:
        image = _scale(_corrected(frame, layout.stored), rescale, low, width).astype(np.float32)
    tensor = resize32(image)
    if ds.get("PhotometricInterpretation") == "MONOCHROME1":
        tensor = 1.0 - tensor
    return tensor


def _rgb_tensor(frame: np.ndarray, layout: Layout) -> np.ndarray:
    image = _corrected(frame, layout.stored).astype(np.float64) @ _LUMA
    low = float(image.min())
    return resize32(_scale(image, None, low, float(image.max()) - low).astype(np.float32))


def fast_tensor(ds: pydicom.Dataset) -> np.ndarray | None:
    """The CNN input of `ds` by the fast path, or None when the general path must decide."""
    try:
        if "PixelData" not in ds or "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
            return None
        layout = _layout(ds)
        frame = None if layout is None else _frame(ds, layout)
        if layout is None or frame is None:
            return None
        tensor = _grey_tensor(ds, frame, layout) if layout.samples == 1 else _rgb_tensor(frame, layout)
    except (AttributeError, TypeError, ValueError, KeyError, IndexError, NotImplementedError):
        return None  # an element the fast path cannot read: the general path decides
    if tensor is None:
        return None
    return np.ascontiguousarray(tensor, dtype=np.float32)[None, :, :]


def scan_tensor(ds: pydicom.Dataset) -> np.ndarray:
    """The CNN input of `ds`: the fast path where it applies, else `dicom_to_tensor`."""
    fast = fast_tensor(ds)
    return dicom_to_tensor(ds) if fast is None else fast
