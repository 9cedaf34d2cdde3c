"""Input formats: the preprocessing a model declares (`input_format` in its config.pbtxt).

Each id names a pure function DICOM dataset -> float32 tensor (batch axis excluded) and the
tensor's dims, which start-up compares with the model's input dims on Triton:

- `gray128`: `worker.preprocess.fast_dicom.scan_tensor` (= `scan.dicom_to_tensor` within 1e-5), [1, 128, 128] in [0, 1] (scan_cnn);
- `rgb150_tf_nhwc` (and every id of `worker.preprocess.rgb.INPUT_FORMATS`): the imported
  Keras networks' input, [150, 150, 3] in [-1, 1].
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pydicom

from worker.preprocess import rgb
from worker.preprocess.fast_dicom import scan_tensor
from worker.preprocess.scan import IMAGE_SIZE


@dataclass(frozen=True)
class InputFormat:
    """One preprocessing: its id, tensor dims (no batch axis) and function."""

    id: str
    dims: tuple[int, ...]
    prepare: Callable[[pydicom.Dataset], np.ndarray]


FORMATS: dict[str, InputFormat] = {
    "gray128": InputFormat("gray128", (1, IMAGE_SIZE, IMAGE_SIZE), scan_tensor),
    **{fid: InputFormat(fid, fmt.dims, rgb.preprocessor(fid))
       for fid, fmt in rgb.INPUT_FORMATS.items()},
}


def input_format(format_id: str) -> InputFormat:
    """The format registered as `format_id`; KeyError naming the known ones otherwise."""
    try:
        return FORMATS[format_id]
    except KeyError:
        raise KeyError(f"unknown input_format {format_id!r}; known: {sorted(FORMATS)}") from None
