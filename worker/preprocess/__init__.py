"""Pure preprocessing shared by model training and the worker (numpy/pydicom only)."""

from worker.preprocess.scan import IMAGE_SIZE, dicom_to_tensor, pixels_to_tensor
from worker.preprocess.vitals import WINDOW_LEN, window_to_tensor

__all__ = [
    "IMAGE_SIZE",
    "WINDOW_LEN",
    "dicom_to_tensor",
    "pixels_to_tensor",
    "window_to_tensor",
]
