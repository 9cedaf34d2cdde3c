"""RGB preprocessing for the imported Keras networks: DICOM -> float32 [size, size, 3].

The Xception classifiers served as `chest_xray_pneumonia` and `brain_mri_tumour` were trained on
8-bit JPEGs that Keras' `ImageDataGenerator.flow_from_dataframe` read as RGB, resized to 150x150
with *nearest-neighbour* interpolation (its default, aspect ratio not kept) and scaled with
`xception.preprocess_input` (x / 127.5 - 1). This module rebuilds that input from a DICOM:

1. decode (refusing decompression bombs), middle frame of a multi-frame image;
2. modality LUT / rescale slope+intercept;
3. VOI: the VOI LUT Sequence, else WindowCenter/WindowWidth with VOILUTFunction
   (LINEAR, LINEAR_EXACT, SIGMOID as in DICOM PS3.3 C.11.2.1.2), else the image's min..max;
4. MONOCHROME1 inverted, so bright = dense as in the training JPEGs;
5. quantised to 8 bits (what a JPEG export of the study would hold);
6. resized to size x size (nearest, exactly as Keras/PIL did in training; "area" = the
   antialiased bilinear of `worker.preprocess.scan.resize`), grey replicated to 3 channels;
7. scaled by the input format ("tf": x / 127.5 - 1).

Pure numpy + pydicom (no PIL, no torch). The worker looks the function up by the model's
`input_format` config parameter: `preprocessor(input_format)(dataset) -> float32 array`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pydicom
from pydicom.pixels import apply_modality_lut, apply_voi_lut

from worker.errors import DeadLetterReason, PoisonMessage
from worker.preprocess.scan import dataset_window, decode_frame, resize

INTERPOLATIONS = ("nearest", "area")


@dataclass(frozen=True)
class RgbFormat:
    """One `input_format` id: square size, value scaling and tensor layout (batch axis excluded)."""

    id: str
    size: int
    scaling: str  # "tf": x / 127.5 - 1 (Keras xception/mobilenet preprocess_input)
    layout: str  # "hwc" (ONNX input [N, H, W, 3]) or "chw" ([N, 3, H, W])

    @property
    def dims(self) -> tuple[int, int, int]:
        """The model input dims without the batch axis."""
        return (self.size, self.size, 3) if self.layout == "hwc" else (3, self.size, self.size)


INPUT_FORMATS: dict[str, RgbFormat] = {
    "rgb150_tf_nhwc": RgbFormat("rgb150_tf_nhwc", 150, "tf", "hwc"),
}
"""Input formats the worker can produce, by the id a model declares in config.pbtxt."""


def _voi_window(image: np.ndarray, centre: float, width: float, function: str) -> np.ndarray:
    """VOI window to [0, 1] (DICOM PS3.3 C.11.2.1.2.1 and C.11.2.1.3.1)."""
    function = function.upper()
    if function == "SIGMOID":
        return 1.0 / (1.0 + np.exp(-4.0 * (image - centre) / width))
    if function == "LINEAR_EXACT":
        return np.clip((image - centre) / width + 0.5, 0.0, 1.0)
    if width < 1:  # LINEAR requires width >= 1
        raise PoisonMessage(DeadLetterReason.WINDOW, f"LINEAR window width {width} < 1")
    if width == 1:  # the standard's threshold case
        return (image > centre - 0.5).astype(np.float64)
    return np.clip((image - (centre - 0.5)) / (width - 1) + 0.5, 0.0, 1.0)


def _min_max(image: np.ndarray) -> np.ndarray:
    lowest, highest = float(image.min()), float(image.max())
    if highest == lowest:
        return np.zeros_like(image, dtype=np.float64)
    return (image - lowest) / (highest - lowest)


def to_unit_grey(image: np.ndarray, ds: pydicom.Dataset | None = None) -> np.ndarray:
    """A grey image (after the modality LUT) to display values in [0, 1], float64.

    Uses the dataset's first VOI LUT, else its first window (with VOILUTFunction), else the
    image's own min..max. Raises PoisonMessage for non-finite pixels or a malformed VOI.
    """
    image = np.asarray(image, dtype=np.float64)
    lowest, highest = float(image.min()), float(image.max())  # NaN/inf show up here
    if not (np.isfinite(lowest) and np.isfinite(highest)):
        raise PoisonMessage(DeadLetterReason.NON_FINITE, "image contains NaN or infinite pixel values")
    if ds is not None and "VOILUTSequence" in ds and len(ds.VOILUTSequence):
        try:
            stored = np.rint(image).astype(np.int64)  # a LUT is indexed by integer values
            mapped = np.asarray(apply_voi_lut(stored, ds, prefer_lut=True), dtype=np.float64)
        except Exception as exc:  # malformed LUT descriptor or data
            raise PoisonMessage(DeadLetterReason.WINDOW, f"cannot apply VOI LUT: {type(exc).__name__}") from exc
        return _min_max(mapped)
    window = dataset_window(ds) if ds is not None else None
    if window is not None:
        function = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR")
        return _voi_window(image, window[0], window[1], function)
    return _min_max(image)


@functools.lru_cache(maxsize=64)
def _nearest_index(n_in: int, n_out: int) -> np.ndarray:
    """Source index per output pixel exactly as PIL's NEAREST resize picks it.

    PIL starts at 0.5 * step and adds the step in double precision pixel by pixel, then
    truncates; a cumulative sum reproduces its rounding (floor((i + 0.5) * step) differs on
    exact halves). Checked against Pillow 13 on random shapes in tests/unit/test_keras_import.py.
    """
    step = np.full(n_out, n_in / n_out)
    step[0] *= 0.5
    index = np.minimum(np.cumsum(step).astype(np.intp), n_in - 1)
    index.flags.writeable = False
    return index


def resize_plane(image: np.ndarray, size: int, interpolation: str = "nearest") -> np.ndarray:
    """Resize a 2-D (or H, W, C) image to size x size, aspect ratio not kept (as Keras did)."""
    if interpolation == "nearest":
        rows = _nearest_index(image.shape[0], size)
        cols = _nearest_index(image.shape[1], size)
        return image[rows[:, None], cols[None, :]]
    if interpolation == "area":
        if image.ndim == 2:
            return resize(image, size)
        return np.stack([resize(image[..., c], size) for c in range(image.shape[-1])], axis=-1)
    raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, not {interpolation!r}")


def rgb8_to_input(rgb8: np.ndarray, fmt: RgbFormat) -> np.ndarray:
    """An 8-bit RGB [size, size, 3] image (any numeric dtype holding 0..255) -> model input."""
    if fmt.scaling != "tf":
        raise ValueError(f"unknown scaling {fmt.scaling!r}")
    x = np.asarray(rgb8, dtype=np.float32) / np.float32(127.5) - np.float32(1.0)
    return x if fmt.layout == "hwc" else np.ascontiguousarray(x.transpose(2, 0, 1))


def _check_image(pixels: np.ndarray) -> np.ndarray:
    pixels = np.asarray(pixels)
    if not np.issubdtype(pixels.dtype, np.number) or pixels.dtype == np.bool_:
        raise PoisonMessage(DeadLetterReason.PIXEL_DECODE, f"pixel dtype {pixels.dtype} is not numeric")
    if pixels.ndim == 3 and pixels.shape[-1] == 4:
        pixels = pixels[..., :3]
    if not (pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[-1] == 3)):
        raise PoisonMessage(DeadLetterReason.SHAPE, f"expected a 2-D grey or (H, W, 3) image, got {pixels.shape}")
    if min(pixels.shape[:2]) < 2:
        raise PoisonMessage(DeadLetterReason.SHAPE, f"image too small: {pixels.shape}")
    return pixels


def unit_to_rgb8(unit: np.ndarray, size: int, interpolation: str = "nearest") -> np.ndarray:
    """[0, 1] grey (H, W) or colour (H, W, 3) -> uint8 [size, size, 3]: quantise, resize, replicate."""
    quantised = np.rint(np.clip(unit, 0.0, 1.0) * 255.0)
    resized = resize_plane(quantised, size, interpolation)
    if interpolation != "nearest":
        resized = np.rint(np.clip(resized, 0.0, 255.0))
    if resized.ndim == 2:
        resized = np.repeat(resized[:, :, None], 3, axis=2)
    return resized.astype(np.uint8)


def pixels_to_rgb8(pixels: np.ndarray, size: int, *, ds: pydicom.Dataset | None = None,
                   interpolation: str = "nearest") -> np.ndarray:
    """Pixels (after the modality LUT) -> the JPEG-like uint8 [size, size, 3] the network expects.

    Grey images go through the VOI of `ds` (LUT, window or min..max) and MONOCHROME1 inversion;
    colour (H, W, 3) images are min..max scaled unless already 8-bit.
    """
    pixels = _check_image(pixels)
    if pixels.ndim == 2:
        unit = to_unit_grey(pixels, ds)
        if ds is not None and ds.get("PhotometricInterpretation", "") == "MONOCHROME1":
            unit = 1.0 - unit
    elif pixels.dtype == np.uint8:
        unit = pixels / 255.0
    else:
        unit = to_unit_grey(pixels)  # min..max over all channels; checks finiteness
    return unit_to_rgb8(unit, size, interpolation)


def dicom_to_rgb8(ds: pydicom.Dataset, size: int = 150, *,
                  interpolation: str = "nearest") -> np.ndarray:
    """A DICOM dataset -> uint8 [size, size, 3], the image a JPEG export would have given.

    Raises PoisonMessage when pixel data is missing, oversized, undecodable, non-finite or of
    an unusable shape, or when its modality LUT / VOI cannot be applied.
    """
    arr = decode_frame(ds)  # middle frame; palette and YCbCr already RGB
    if arr.ndim == 2:
        try:
            arr = apply_modality_lut(arr, ds)
        except Exception as exc:  # malformed LUT / rescale elements
            raise PoisonMessage(DeadLetterReason.MODALITY_LUT, f"cannot apply modality LUT: {exc}") from exc
        return pixels_to_rgb8(arr, size, ds=ds, interpolation=interpolation)
    return pixels_to_rgb8(arr, size, interpolation=interpolation)


def dicom_to_rgb(ds: pydicom.Dataset, size: int = 150, *, scaling: str = "tf",
                 layout: str = "hwc", interpolation: str = "nearest") -> np.ndarray:
    """A DICOM dataset -> float32 network input [size, size, 3] ("hwc") or [3, size, size].

    `dicom_to_rgb8` followed by the scaling ("tf": x / 127.5 - 1, values in [-1, 1]).
    """
    fmt = RgbFormat(f"rgb{size}_{scaling}_{layout}", size, scaling, layout)
    return rgb8_to_input(dicom_to_rgb8(ds, size, interpolation=interpolation), fmt)


def preprocessor(input_format: str) -> Callable[[pydicom.Dataset], np.ndarray]:
    """The function that turns a DICOM dataset into the input of a model declaring `input_format`."""
    try:
        fmt = INPUT_FORMATS[input_format]
    except KeyError:
        raise ValueError(
            f"unknown input_format {input_format!r}; known: {sorted(INPUT_FORMATS)}") from None
    return functools.partial(dicom_to_rgb, size=fmt.size, scaling=fmt.scaling, layout=fmt.layout)
