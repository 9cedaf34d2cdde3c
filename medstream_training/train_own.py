"""`medstream models train`: a scan classifier on your own labelled images (docs/training.md).

The data: a MedMNIST-style `.npz` (its own test split is held out) or a folder per class
(a patient-grouped, class-spread share of the images is held out). The ScanCNN is trained on
the rest with the worker's own preprocessing, evaluated on the held-out images, and exported
with the routing declaration you give as `<repository>/<name>/1/model.onnx` + `config.pbtxt`
(Triton model repository) plus `<checkpoints>/<name>.pt`. The exported model is the one
that was evaluated: it never saw the held-out images.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from medstream_training import CHECKPOINTS, REPOSITORY, SCAN_MODEL, VITALS_MODEL
from medstream_training.build import MODEL_VERSION, dataset_tag, save_checkpoint
from medstream_training.export import export_scan
from medstream_training.images import ImageSet, load_image_set
from medstream_training.stats import Estimate, wilson
from medstream_training.train_scan import (
    ScanTrainConfig,
    eval_tensors,
    group_folds,
    predict,
    train_scan,
)

RESERVED = (SCAN_MODEL, VITALS_MODEL, "chest_xray_pneumonia", "brain_mri_tumour")
"""Shipped model names: `models train` never overwrites them (`models build` rebuilds them)."""


@dataclass(frozen=True)
class TrainOptions:
    """What `models train` does; every field has a CLI flag."""

    dataset: str
    name: str
    modalities: str
    body_parts: str = ""
    intended_use: str = "research only, not for clinical use"
    classes: tuple[str, ...] | None = None
    epochs: int = ScanTrainConfig.epochs
    test_fraction: float = 0.25
    seed: int = 0
    repository: Path = REPOSITORY
    checkpoints: Path = CHECKPOINTS
    threads: int = 2


@dataclass(frozen=True)
class TrainResult:
    """The held-out evaluation and where the model went."""

    name: str
    version: str
    source: str
    classes: list[str]
    n_train: int
    n_test: int
    correct: int
    accuracy: Estimate
    recall: dict[str, tuple[int, int, Estimate]]
    onnx_max_abs_diff: float
    onnx_path: Path
    sha256: str
    checkpoint: Path
    seconds: float


def held_out_split(data: ImageSet, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) indices: the source's own test split, else one fold of patient-grouped,
    class-spread folds (about `test_fraction` of the images)."""
    if "test" in data.split:
        test = np.flatnonzero(np.array(data.split) == "test")
    else:
        folds = max(2, round(1.0 / test_fraction))
        test = group_folds(data.groups, data.labels, folds, seed)[0]
    train = np.setdiff1d(np.arange(len(data.images)), test)
    missing = [c for i, c in enumerate(data.classes) if not (data.labels[train] == i).any()]
    if test.size == 0 or missing:
        raise ValueError(f"{data.source}: too few images to hold some out "
                         f"(test {test.size}, classes without training images: {missing})")
    return train, test


def _declaration(opts: TrainOptions) -> dict[str, str]:
    if not opts.modalities.strip():
        raise ValueError("--modalities is required: the DICOM modalities the model is for (e.g. CR,DX)")
    return {"modalities": opts.modalities.upper(), "body_parts": opts.body_parts.upper(),
            "input_format": "gray128", "intended_use": opts.intended_use}


def train_own(opts: TrainOptions) -> TrainResult:
    """Load, split, train, evaluate on the held-out images, export; see the module docstring."""
    if opts.name in RESERVED:
        raise ValueError(f"--name {opts.name!r} is a shipped model; choose another name")
    declaration = _declaration(opts)
    started = time.perf_counter()
    torch.set_num_threads(opts.threads)
    data = load_image_set(opts.dataset, list(opts.classes) if opts.classes else None)
    train, test = held_out_split(data, opts.test_fraction, opts.seed)
    model = train_scan(data, train, ScanTrainConfig(epochs=opts.epochs, seed=opts.seed))
    tensors = eval_tensors([data.images[i] for i in test])
    probs, truth = predict(model, tensors), data.labels[test]
    hits = probs.argmax(1) == truth
    recall = {c: (int(hits[truth == i].sum()), int((truth == i).sum()),
                  wilson(int(hits[truth == i].sum()), int((truth == i).sum())))
              for i, c in enumerate(data.classes)}
    version = f"{MODEL_VERSION}-{dataset_tag(opts.dataset)}-seed{opts.seed}"
    checkpoint = opts.checkpoints / f"{opts.name}.pt"
    save_checkpoint(checkpoint, model, {"classes": data.classes, "version": version, "source": data.source})
    digest = export_scan(model, data.classes, opts.repository, version, name=opts.name, declaration=declaration)
    onnx_path = opts.repository / opts.name / "1" / "model.onnx"
    served = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).run(
        None, {"image": tensors.numpy()})[0]
    return TrainResult(opts.name, version, data.source, data.classes, train.size, test.size,
                       int(hits.sum()), wilson(int(hits.sum()), test.size), recall,
                       float(np.abs(served - probs).max()), onnx_path, digest, checkpoint,
                       time.perf_counter() - started)


def summary(result: TrainResult) -> list[str]:
    """What `models train` prints."""
    return [
        (f"{result.name}: trained on {result.n_train} images of {result.source}; "
        f"classes {','.join(result.classes)}"),
        f"held-out test: {result.correct}/{result.n_test} correct, accuracy {result.accuracy} (95% Wilson)",
        *(f"  recall {c}: {k}/{n} = {e}" for c, (k, n, e) in result.recall.items()),
        (f"exported {result.onnx_path} (sha256 {result.sha256[:16]}..., ONNX vs torch max |diff| "
        f"{result.onnx_max_abs_diff:.1e}), checkpoint {result.checkpoint}"),
        f"done in {result.seconds:.1f} s",
    ]
