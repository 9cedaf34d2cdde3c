"""Scan preprocessing shared by training and the worker: pixels -> float32 [1, 128, 128].

Pure numpy/pydicom (no torch, no PIL) so the worker needs neither. Training code in
`triton_models` calls `pixels_to_tensor` on every image, so served and trained inputs are
produced by the same function.
"""

from __future__ import annotations

import functools

import numpy as np
import pydicom
from pydicom.pixels import apply_color_lut, apply_modality_lut, convert_color_space, get_decoder
from pydicom.pixels.utils import as_pixel_options

from worker.errors import DeadLetterReason, PoisonMessage

IMAGE_SIZE = 128
"""Side of the square model input; the CNN input is float32 [1, IMAGE_SIZE, IMAGE_SIZE]."""

MAX_DECODED_BYTES = 256 * 2**20
"""Largest pixel array (every frame) decoded; bigger ones are refused before decoding, so a
small compressed file cannot make the worker allocate gigabytes (decompression bomb)."""

_LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601 luminance weights
_PIXEL_ELEMENTS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_YBR = ("YBR_FULL", "YBR_FULL_422")  # what pydicom's convert_color_space turns into RGB
_DISPLAYED = ("MONOCHROME1", "MONOCHROME2", "RGB")  # shown as decoded


@functools.lru_cache(maxsize=64)
def _resize_matrix(n_in: int, n_out: int) -> np.ndarray:
    """[n_out, n_in] linear-interpolation weights, antialiased (triangle filter) when shrinking.

    Cached per (n_in, n_out): a stream of same-sized images builds them once (read-only).
    """
    scale = n_in / n_out
    support = max(scale, 1.0)
    centres = (np.arange(n_out) + 0.5) * scale - 0.5
    taps = np.arange(n_in)
    weights = np.clip(1.0 - np.abs(taps[None, :] - centres[:, None]) / support, 0.0, None)
    weights /= weights.sum(axis=1, keepdims=True)
    weights.flags.writeable = False
    return weights


def resize(image: np.ndarray, size: int = IMAGE_SIZE) -> np.ndarray:
    """Resize a 2-D float image to size x size (separable, antialiased bilinear)."""
    rows = _resize_matrix(image.shape[0], size)
    cols = _resize_matrix(image.shape[1], size)
    return rows @ image @ cols.T


def to_luminance(pixels: np.ndarray) -> np.ndarray:
    """Collapse an (H, W, 3|4) RGB(A) array to (H, W) luminance; 2-D input is returned as is."""
    if pixels.ndim == 3 and pixels.shape[-1] in (3, 4):
        return pixels[..., :3].astype(np.float64) @ _LUMA
    return pixels


def pixels_to_tensor(
    pixels: np.ndarray, *, window: tuple[float, float] | None = None
) -> np.ndarray:
    """Turn one image into the CNN input: float32 [1, 128, 128] with values in [0, 1].

    `pixels` is (H, W) grey or (H, W, 3|4) RGB(A) in any numeric dtype. With `window`
    (centre, width) values are clipped to the window and scaled to [0, 1]; without it the
    image's own min..max is used (a constant image becomes all zeros). Raises PoisonMessage
    for an image that is not 2-D, is too small or contains non-finite values.
    """
    image = to_luminance(np.asarray(pixels))
    if image.ndim != 2:
        raise PoisonMessage(DeadLetterReason.SHAPE, f"expected a 2-D image, got shape {image.shape}")
    if min(image.shape) < 2:
        raise PoisonMessage(DeadLetterReason.SHAPE, f"image too small: {image.shape}")
    if not np.issubdtype(image.dtype, np.number) or image.dtype == np.bool_:
        raise PoisonMessage(DeadLetterReason.PIXEL_DECODE, f"pixel dtype {image.dtype} is not numeric")
    # min/max propagate NaN and show +/-inf, so they double as the finiteness check
    lowest, highest = float(image.min()), float(image.max())
    if not (np.isfinite(lowest) and np.isfinite(highest)):
        raise PoisonMessage(DeadLetterReason.NON_FINITE, "image contains NaN or infinite pixel values")
    if window is not None:
        centre, width = float(window[0]), float(window[1])
        if not (np.isfinite(centre) and np.isfinite(width)) or width <= 0:
            raise PoisonMessage(DeadLetterReason.WINDOW, f"invalid window centre={centre} width={width}")
        low = centre - width / 2.0
    else:
        low, width = lowest, highest - lowest
    scaled = image.astype(np.float64)  # a copy: scaled in place below
    if width == 0:
        scaled[...] = 0.0
    else:
        scaled -= low
        scaled /= width
        np.clip(scaled, 0.0, 1.0, out=scaled)
    return resize(scaled)[None, :, :].astype(np.float32)


def _first(value: object) -> float:
    """First value of a possibly multi-valued DICOM numeric element."""
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        value = value[0]
    return float(value)


def dataset_window(ds: pydicom.Dataset) -> tuple[float, float] | None:
    """(centre, width) from WindowCenter/WindowWidth, or None when absent or unusable."""
    if "WindowCenter" not in ds or "WindowWidth" not in ds:
        return None
    try:
        centre, width = _first(ds.WindowCenter), _first(ds.WindowWidth)
    except (TypeError, ValueError, IndexError):
        return None
    if not (np.isfinite(centre) and np.isfinite(width)) or width <= 0:
        return None
    return centre, width


def decoded_bytes(ds: pydicom.Dataset) -> int:
    """Size of the pixel array that decoding `ds` would allocate, from its header alone."""
    try:
        dims = [int(ds.get(tag, default) or default) for tag, default in (
            ("Rows", 0), ("Columns", 0), ("NumberOfFrames", 1), ("SamplesPerPixel", 1))]
        bits = int(ds.get("BitsAllocated", 8) or 8)
    except (TypeError, ValueError, OverflowError) as exc:
        raise PoisonMessage(DeadLetterReason.PIXEL_DECODE, f"malformed image dimensions: {type(exc).__name__}") from exc
    if min(dims) < 1 or bits < 1:
        raise PoisonMessage(DeadLetterReason.SHAPE, f"invalid image dimensions {dims} x {bits} bits")
    return int(np.prod(dims, dtype=object)) * ((bits + 7) // 8)


def _decode(ds: pydicom.Dataset, max_bytes: int) -> tuple[np.ndarray, str]:
    """The middle frame as decoded, and its photometric interpretation after decoding."""
    if not any(element in ds for element in _PIXEL_ELEMENTS):
        raise PoisonMessage(DeadLetterReason.NO_PIXEL_DATA, "DICOM dataset has no pixel data")
    size = decoded_bytes(ds)  # validates Rows/Columns/NumberOfFrames/SamplesPerPixel first
    if size > max_bytes:
        raise PoisonMessage(DeadLetterReason.OVERSIZE, f"decoded pixel data of {size} bytes exceeds {max_bytes}")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    try:
        decoder = get_decoder(ds.file_meta.TransferSyntaxUID)
        arr, meta = decoder.as_array(ds, index=frames // 2 if frames > 1 else None,
                                     **as_pixel_options(ds))
    except Exception as exc:  # pydicom raises many types for corrupt/unsupported pixel data
        raise PoisonMessage(DeadLetterReason.PIXEL_DECODE, f"cannot decode pixel data: {type(exc).__name__}") from exc
    photometric = str(meta.get("photometric_interpretation") or ds.get("PhotometricInterpretation", ""))
    return arr, photometric.strip().upper()


def to_display(arr: np.ndarray, photometric: str, ds: pydicom.Dataset) -> np.ndarray:
    """One decoded frame as the image a viewer shows: greyscale (H, W) as stored, or RGB.

    PALETTE COLOR indices go through the dataset's palette, YCbCr (YBR_FULL, YBR_FULL_422) is
    converted to RGB when the decoder left it; other colour models are refused.
    """
    try:
        if photometric == "PALETTE COLOR":
            return apply_color_lut(arr, ds)
        if photometric in _YBR:
            return convert_color_space(arr, photometric, "RGB")
    except Exception as exc:  # a malformed palette LUT or a non-3-sample YCbCr array
        raise PoisonMessage(DeadLetterReason.PIXEL_DECODE, f"cannot convert {photometric} to RGB: {type(exc).__name__}") from exc
    if photometric not in _DISPLAYED:
        raise PoisonMessage(DeadLetterReason.PIXEL_DECODE, f"photometric interpretation {photometric[:16]!r} is not supported")
    return arr


def decode_frame(ds: pydicom.Dataset, max_bytes: int = MAX_DECODED_BYTES) -> np.ndarray:
    """The middle frame of `ds` (the only one decoded) as greyscale (H, W) or RGB (H, W, 3).

    Raises PoisonMessage when the pixel data is missing, larger than `max_bytes` once
    decoded (checked from the header, before decoding), undecodable or of a colour model
    that cannot be shown.
    """
    arr, photometric = _decode(ds, max_bytes)
    return to_display(arr, photometric, ds)


def dicom_to_tensor(ds: pydicom.Dataset) -> np.ndarray:
    """Turn a DICOM dataset into the CNN input, float32 [1, 128, 128] in [0, 1].

    Decodes the middle frame only; applies the modality LUT / rescale slope+intercept, the
    dataset's window when present and MONOCHROME1 inversion (so bright = dense everywhere) to
    greyscale images, and takes the luminance of colour ones (palette and YCbCr converted to
    RGB first). Raises PoisonMessage when the
    pixel data is missing, undecodable or of an unusable shape.
    """
    arr = decode_frame(ds)
    grey = arr.ndim == 2
    if grey:
        try:
            arr = apply_modality_lut(arr, ds)
        except Exception as exc:  # malformed LUT / rescale elements
            raise PoisonMessage(DeadLetterReason.MODALITY_LUT, f"cannot apply modality LUT: {exc}") from exc
        window = dataset_window(ds)
    else:
        window = None  # VOI windows are defined for greyscale only
    tensor = pixels_to_tensor(arr, window=window)
    if grey and ds.get("PhotometricInterpretation", "") == "MONOCHROME1":
        tensor = (1.0 - tensor).astype(np.float32)
    return tensor
