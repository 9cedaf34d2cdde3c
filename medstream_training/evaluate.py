"""`medstream models evaluate`: honest figures for the exported models, as a Markdown model card.

- scan_cnn: grouped (patient-level) k-fold cross-validation of the training *procedure* on
  the chosen image set (the shipped model saw every image), plus an export check.
- vitals_lstm: the exported ONNX model on held-out synthetic patients (test HR from the last
  third of the ECG) and on windows whose HR is real (MIT-BIH 208, heartpy's PPGs), against
  last-observation and current-NEWS2 baselines (medstream_training.vitals_eval).
- LR/SVM on sklearn breast cancer; throughput in-process and via Triton.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tritonclient.utils import InferenceServerException

from medstream_training import REPOSITORY, SCAN_MODEL, VITALS_MODEL, vitals_eval
from medstream_training.build import CHECKPOINTS, load_scan
from medstream_training.card import render_card
from medstream_training.export import read_config_parameters
from medstream_training.images import load_image_set
from medstream_training.stats import binary_report, calibration, multiclass_report
from medstream_training.tabular import run_baseline
from medstream_training.throughput import bench_local, bench_triton, onnx_session, timing_rows
from medstream_training.train_scan import ScanTrainConfig, cross_validate, eval_tensors, held_out
from worker.contracts import CHANNELS
from worker.preprocess.scan import IMAGE_SIZE
from worker.preprocess.vitals import WINDOW_LEN

log = logging.getLogger(__name__)

BATCHES = (1, 32)


@dataclass(frozen=True)
class EvaluateOptions:
    """What `models evaluate` measures; every field has a CLI flag."""

    dataset: str = "pneumonia"
    classes: tuple[str, ...] | None = None
    seed: int = 0
    folds: int = 5
    scan_epochs: int = ScanTrainConfig.epochs
    repository: Path = REPOSITORY
    checkpoints: Path = CHECKPOINTS
    threads: int = 2
    triton_grpc_url: str | None = None


def evaluate_scan(opts: EvaluateOptions) -> dict[str, object]:
    """Grouped CV of the CNN procedure, label mapping and ONNX-vs-torch check."""
    data = load_image_set(opts.dataset, list(opts.classes) if opts.classes else None)
    config = ScanTrainConfig(epochs=opts.scan_epochs, seed=opts.seed)
    if "test" in data.split:  # the source's own split (MedMNIST): no cross-validation
        folds = 0
        test, probs = held_out(data, config)
    else:
        folds = min(opts.folds, len(set(data.groups)))
        test, probs = np.arange(len(data.images)), cross_validate(data, config, folds)
    labels = data.labels[test]
    result: dict[str, object] = {
        "source": data.source, "counts": data.counts(), "n": len(data.images), "n_test": len(test),
        "groups": len(set(data.groups)), "folds": folds, "classes": data.classes,
        "multiclass": multiclass_report(labels, probs),
    }
    if len(data.classes) == 2:
        result["binary"] = binary_report(labels, probs[:, 1], seed=opts.seed)
        result["calibration"] = calibration(labels, probs[:, 1])
    model, labels, version = load_scan(opts.checkpoints / f"{SCAN_MODEL}.pt")
    onnx_path = opts.repository / SCAN_MODEL / "1" / "model.onnx"
    session = onnx_session(onnx_path, opts.threads)
    tensors = eval_tensors(data.images)
    with torch.no_grad():
        reference = model(tensors).numpy()
    served = session.run(None, {"image": tensors.numpy()})[0]
    params = read_config_parameters(opts.repository / SCAN_MODEL / "config.pbtxt")
    result.update(
        version=version, labels=labels, config_labels=params.get("labels", "").split(","),
        sha256=params.get("model_sha256", ""), onnx_max_abs_diff=float(np.abs(served - reference).max()),
        size_bytes=onnx_path.stat().st_size, model=model, session=session,
    )
    return result


def evaluate_vitals(opts: EvaluateOptions) -> dict[str, object]:
    """The exported LSTM on held-out synthetic patients and real-HR windows (vitals_eval)."""
    return vitals_eval.evaluate_vitals(opts.repository, opts.checkpoints, opts.seed, opts.threads)


def throughput(opts: EvaluateOptions, scan: dict[str, object], vitals: dict[str, object]) -> list[str]:
    """Markdown rows of in-process and (when reachable) Triton timings for both models."""
    specs = [
        (SCAN_MODEL, "image", (1, IMAGE_SIZE, IMAGE_SIZE), scan),
        (VITALS_MODEL, "window", (WINDOW_LEN, 2 * len(CHANNELS)), vitals),
    ]
    rows = []
    for name, input_name, shape, result in specs:
        rows += timing_rows(name, bench_local(result["model"], result["session"], shape, BATCHES))
        if opts.triton_grpc_url:
            try:
                rows += timing_rows(name, bench_triton(opts.triton_grpc_url, name, input_name, shape, BATCHES))
            except (InferenceServerException, RuntimeError, OSError) as exc:  # say so, keep the rest
                log.warning("Triton benchmark of %s skipped: %s", name, exc)
                rows.append(f"| {name} | Triton gRPC ({opts.triton_grpc_url}) | - | not measured: {type(exc).__name__} | - |")
    return rows


def evaluate(opts: EvaluateOptions) -> str:
    """Run every evaluation and return the model card as Markdown."""
    torch.set_num_threads(opts.threads)
    scan = evaluate_scan(opts)
    vitals = evaluate_vitals(opts)
    tabular, n_train, n_test = run_baseline(opts.seed)
    rows = throughput(opts, scan, vitals)
    return render_card(opts, scan, vitals, (tabular, n_train, n_test), rows)
