"""`medstream models build`: train (or load checkpoints), export ONNX + config.pbtxt with hashes.

Deterministic for a fixed seed on one machine: same data, same seed, same bytes.
Checkpoints are plain tensors + strings, loaded with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from medstream_training import CHECKPOINTS, REPOSITORY, SCAN_MODEL, VITALS_MODEL
from medstream_training.export import export_scan, export_vitals
from medstream_training.images import load_image_set
from medstream_training.nets import ScanCNN, VitalsLSTM
from medstream_training.train_scan import ScanTrainConfig, train_scan
from medstream_training.train_vitals import VitalsTrainConfig, train_vitals
from medstream_training.vitals_data import train_test_sets

log = logging.getLogger(__name__)

MODEL_VERSION = "1"


@dataclass(frozen=True)
class BuildOptions:
    """What `models build` does; every field has a CLI flag."""

    dataset: str = "pneumonia"
    classes: tuple[str, ...] | None = None
    seed: int = 0
    scan_epochs: int = ScanTrainConfig.epochs
    vitals_epochs: int = VitalsTrainConfig.epochs
    from_checkpoint: bool = False
    models: tuple[str, ...] = (SCAN_MODEL, VITALS_MODEL)
    repository: Path = REPOSITORY
    checkpoints: Path = CHECKPOINTS
    threads: int = 2


def dataset_tag(spec: str) -> str:
    """Short tag of a dataset spec for version strings (builtin name or file/folder stem)."""
    return "".join(c if c.isalnum() else "-" for c in Path(spec).stem)[:32] or "data"


def save_checkpoint(path: Path, model: torch.nn.Module, meta: dict[str, object]) -> None:
    """State dict plus string/list metadata (no arbitrary objects: weights_only-loadable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": model.state_dict(), **meta}, path)


def load_checkpoint(path: Path) -> dict[str, object]:
    """A checkpoint written by save_checkpoint; refuses anything but tensors and plain values."""
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}: run `medstream models build` first")
    return torch.load(path, weights_only=True)


def load_scan(path: Path) -> tuple[ScanCNN, list[str], str]:
    """(model in eval mode, class labels, version) from a scan checkpoint."""
    ckpt = load_checkpoint(path)
    model = ScanCNN(len(ckpt["classes"]))
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), list(ckpt["classes"]), str(ckpt["version"])


def load_vitals(path: Path) -> tuple[VitalsLSTM, str]:
    """(model in eval mode, version) from a vitals checkpoint."""
    ckpt = load_checkpoint(path)
    model = VitalsLSTM()
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), str(ckpt["version"])


def build_scan(opts: BuildOptions) -> str:
    """Train (or load) scan_cnn and export it; returns its sha256."""
    path = opts.checkpoints / f"{SCAN_MODEL}.pt"
    if opts.from_checkpoint:
        model, classes, version = load_scan(path)
    else:
        data = load_image_set(opts.dataset, list(opts.classes) if opts.classes else None)
        log.info("scan_cnn: training on %s %s", data.source, data.counts())
        model = train_scan(data, data.train_indices(),
                           ScanTrainConfig(epochs=opts.scan_epochs, seed=opts.seed))
        classes = data.classes
        version = f"{MODEL_VERSION}-{dataset_tag(opts.dataset)}-seed{opts.seed}"
        save_checkpoint(path, model, {"classes": classes, "version": version, "source": data.source})
    return export_scan(model, classes, opts.repository, version)


def build_vitals(opts: BuildOptions) -> str:
    """Train (or load) vitals_lstm on the training patients and export it; returns its sha256."""
    path = opts.checkpoints / f"{VITALS_MODEL}.pt"
    if opts.from_checkpoint:
        model, version = load_vitals(path)
    else:
        train, _ = train_test_sets(opts.seed)
        log.info("vitals_lstm: training on %d windows from %d patients", len(train.windows), train.patients)
        model = train_vitals(train, VitalsTrainConfig(epochs=opts.vitals_epochs, seed=opts.seed))
        version = f"{MODEL_VERSION}-ecg208-synthetic-seed{opts.seed}"
        save_checkpoint(path, model, {"version": version, "source": "mit-bih-208 hr + synthetic"})
    return export_vitals(model, opts.repository, version)


def build(opts: BuildOptions) -> dict[str, str]:
    """Build the requested models; returns {model: sha256}."""
    torch.set_num_threads(opts.threads)
    builders = {SCAN_MODEL: build_scan, VITALS_MODEL: build_vitals}
    unknown = set(opts.models) - set(builders)
    if unknown:
        raise ValueError(f"unknown model(s) {sorted(unknown)}; choose from {sorted(builders)}")
    return {name: builders[name](opts) for name in opts.models}
