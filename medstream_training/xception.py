"""Evaluation of the imported Xception models: accuracy, calibration, the DICOM loop.

- Accuracy / per-class recall with Wilson intervals and calibration (Brier, top-label ECE) on
  the images bundled with each package, from the ONNX model's probabilities.
- Preprocessing: `worker.preprocess.rgb` against the package's own (Keras load_img nearest +
  preprocess_input) on the JPEGs, and the JPEGs re-encoded as DICOM (MONOCHROME2 8-bit with an
  identity window, MONOCHROME1 inverted, no window = min..max, 12-bit with a window).

Their serving (max_batch_size, CPU cost per image) is measured by the bench grid,
`python -m medstream_tools.bench.batchgrid` (docs/benchmarks.md), not here.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from medstream_training import REPOSITORY
from medstream_training.keras_onnx import onnx_probabilities, onnx_session, reference_input
from medstream_training.keras_sources import SOURCES, KerasSource, bundled_images
from medstream_training.stats import calibration, wilson
from worker.preprocess.rgb import dicom_to_rgb, rgb8_to_input, unit_to_rgb8

SOP_CLASS = {"CR": "1.2.840.10008.5.1.4.1.1.1", "SC": "1.2.840.10008.5.1.4.1.1.7"}


# ---------------------------------------------------------------- DICOM fixtures

def grey_pixels(path: Path) -> np.ndarray:
    """A bundled JPEG as 2-D uint8 grey (they are grey; RGB ones have R == G == B)."""
    from PIL import Image

    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB"))
    if not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])):
        raise ValueError(f"{path.name} is not grey")
    return rgb[..., 0].copy()


def to_dicom(grey8: np.ndarray, *, modality: str, body_part: str, variant: str = "mono2") -> pydicom.Dataset:
    """Encode an 8-bit grey image as a DICOM file and read it back (Part-10 round trip).

    variant: "mono2" (8-bit, window 128/256 = identity under LINEAR), "mono1" (stored
    inverted, same window), "nowindow" (8-bit, no VOI: min..max), "12bit" (x * 16 in 12 bits,
    window 2048/4096).
    """
    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    sop_class = SOP_CLASS["CR"] if modality in ("CR", "DX") else SOP_CLASS["SC"]
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = uid = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, uid
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.BodyPartExamined, ds.PatientID = modality, body_part, "ANON"
    ds.Rows, ds.Columns = grey8.shape
    ds.SamplesPerPixel, ds.PixelRepresentation = 1, 0
    pixels = grey8.astype(np.uint8)
    if variant == "12bit":
        pixels = grey8.astype(np.uint16) * 16
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
        ds.WindowCenter, ds.WindowWidth = 2048, 4096
    else:
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
        if variant != "nowindow":
            ds.WindowCenter, ds.WindowWidth = 128, 256
    if variant == "mono1":
        pixels = (255 - pixels).astype(np.uint8)
    ds.PhotometricInterpretation = "MONOCHROME1" if variant == "mono1" else "MONOCHROME2"
    ds.PixelData = pixels.tobytes()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return pydicom.dcmread(io.BytesIO(buffer.getvalue()))


DICOM_VARIANTS = ("mono2", "mono1", "nowindow", "12bit")


# ---------------------------------------------------------------- evaluation

def multiclass_brier(y: np.ndarray, probs: np.ndarray) -> float:
    """Mean over images of sum_k (p_k - [y == k])^2 (0 = perfect, 2 = confidently wrong)."""
    onehot = np.eye(probs.shape[1])[y]
    return float(((probs - onehot) ** 2).sum(axis=1).mean())


def metrics(y: np.ndarray, probs: np.ndarray, labels: tuple[str, ...]) -> dict:
    """Accuracy and per-class recall (Wilson 95%), Brier and top-label ECE (5 bins)."""
    pred = probs.argmax(axis=1)
    correct = pred == y
    _, ece, bins = calibration(correct.astype(float), probs.max(axis=1))
    return {
        "n": len(y),
        "correct": int(correct.sum()),
        "accuracy": wilson(int(correct.sum()), len(y)),
        "recall": {label: (wilson(int(((pred == k) & (y == k)).sum()), int((y == k).sum())),
                           int(((pred == k) & (y == k)).sum()), int((y == k).sum()))
                   for k, label in enumerate(labels)},
        "brier": multiclass_brier(y, probs),
        "ece": ece,
        "confidence_bins": bins,
        "confusion": [[int(((y == t) & (pred == p)).sum()) for p in range(len(labels))]
                      for t in range(len(labels))],
    }


def evaluate_model(source: KerasSource, repository: Path = REPOSITORY, threads: int = 2) -> dict:
    """Every check of one built model on its bundled images (see the module docstring)."""
    session = onnx_session(repository / source.model / "1" / "model.onnx", threads)
    images = bundled_images(source)
    y = np.array([im.label for im in images])
    fmt = source.fmt
    reference = np.stack([reference_input(im.path, fmt) for im in images])
    greys = [grey_pixels(im.path) for im in images]
    ours = np.stack([rgb8_to_input(unit_to_rgb8(g / 255.0, fmt.size), fmt) for g in greys])
    area = np.stack([rgb8_to_input(unit_to_rgb8(g / 255.0, fmt.size, "area"), fmt) for g in greys])
    probs = onnx_probabilities(session, reference)
    area_probs = onnx_probabilities(session, area)
    dicom = {}
    for variant in DICOM_VARIANTS:
        x = np.stack([dicom_to_rgb(to_dicom(g, modality=source.modalities[0],
                                            body_part=source.body_parts[0], variant=variant),
                                   fmt.size) for g in greys])
        p = onnx_probabilities(session, x)
        dicom[variant] = {
            "max_abs_input_diff": float(np.abs(x - reference).max()),
            "max_abs_prob_diff": float(np.abs(p - probs).max()),
            "same_class": int((p.argmax(1) == probs.argmax(1)).sum()),
        }
    return {
        "model": source.model, "labels": list(source.labels), "package": source.package,
        "version": source.version, "names": [im.name for im in images],
        "source_sha256": source.sha256,
        "declaration": (f"modalities `{','.join(source.modalities)}`, body parts "
                        f"`{','.join(source.body_parts)}`, input `{source.input_format}`"),
        "probabilities": probs.round(6).tolist(),
        "metrics": metrics(y, probs, source.labels),
        "preprocess": {
            "jpeg_nearest_max_abs_input_diff": float(np.abs(ours - reference).max()),
            "area_max_abs_prob_diff": float(np.abs(area_probs - probs).max()),
            "area_same_class": int((area_probs.argmax(1) == probs.argmax(1)).sum()),
            "area_metrics": metrics(y, area_probs, source.labels),
        },
        "dicom": dicom,
        "max_batch_size": source.max_batch_size,
    }


def evaluate_imported(models: tuple[str, ...], repository: Path = REPOSITORY,
                      threads: int = 2) -> dict:
    """Results for the card: per model, the metrics and checks above and the build's record."""
    results: dict = {"models": {}}
    for name in models:
        results["models"][name] = evaluate_model(SOURCES[name], repository, threads)
        build = repository / name / "build.json"
        if build.is_file():
            record = json.loads(build.read_text())
            results["models"][name]["build"] = {k: record[k] for k in (
                "model_sha256", "onnx_bytes", "load_s", "export_s", "check_s", "max_abs_diff",
                "check_images", "torch", "keras", "opset")}
    return results
