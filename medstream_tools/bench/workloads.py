"""What is benchmarked: one workload per model and input size class.

A workload knows its model and input tensor, how to make unique messages, and how to turn a
message into a model input with the worker's own decoding (worker.contracts, worker.preprocess).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medstream_tools.bench import corpus
from medstream_training import REPOSITORY
from worker.contracts import decode_vitals
from worker.preprocess import dicom_to_tensor, window_to_tensor
from worker.preprocess.fast_dicom import scan_tensor
from worker.scan_input import read_dicom

CNN_MODEL = "bench_densenet121"  # medstream_tools/bench/densenet.py, loaded at bench time


def decode_scan(value: bytes) -> tuple[str, np.ndarray]:
    """Raw DICOM Part-10 bytes -> (SOPInstanceUID, CNN input [1, 128, 128]), as the worker does
    (parse, then the fast pixel path where it applies)."""
    ds = read_dicom(value)
    return str(ds.SOPInstanceUID), scan_tensor(ds)


def decode_scan_pydicom(value: bytes) -> tuple[str, np.ndarray]:
    """The same through pydicom's general path (`pixel_array`, float64): the reference."""
    ds = read_dicom(value)
    return str(ds.SOPInstanceUID), dicom_to_tensor(ds)


def decode_window(value: bytes) -> tuple[str, np.ndarray]:
    """medstream.vitals/v1 JSON -> (event_id, LSTM input [60, 12])."""
    window = decode_vitals(value)
    return window.event_id, window_to_tensor(window.values)


@dataclass(frozen=True)
class Workload:
    """One benchmarked stream: kind (scan|vitals), size class, model and input tensor name."""

    name: str
    kind: str
    size_class: str
    model: str
    input_name: str
    batch_sizes: tuple[int, ...]
    worker_env: dict[str, str] = field(default_factory=dict)  # e.g. the kind's model

    @property
    def decode(self) -> Callable[[bytes], tuple[str, np.ndarray]]:
        """Decode + preprocess one message value into (event id, model input)."""
        return decode_scan if self.kind == "scan" else decode_window

    @property
    def reference_decode(self) -> Callable[[bytes], tuple[str, np.ndarray]] | None:
        """The general (pydicom) path for scans; None where there is no other path."""
        return decode_scan_pydicom if self.kind == "scan" else None

    @property
    def loaded_at_bench_time(self) -> bool:
        """True for the real-size CNN, exported and loaded into Triton by the benchmark."""
        return self.model == CNN_MODEL

    def model_source(self) -> Path | bytes:
        """The ONNX model (repository file, or bytes exported now) for the in-process ceiling."""
        if self.loaded_at_bench_time:
            from medstream_tools.bench import densenet  # torch: only when this workload runs

            return densenet.onnx_bytes()
        return REPOSITORY / self.model / "1" / "model.onnx"

    def messages(self, count: int, prefix: str) -> list[corpus.Message]:
        """`count` unique messages (distinct event ids) of this workload."""
        if self.kind == "scan":
            return corpus.scan_messages(self.size_class, count)
        return corpus.vitals_messages(prefix, count)

    def sample_value(self) -> bytes:
        """One representative message value."""
        if self.kind == "scan":
            return corpus.scan_bytes(self.size_class)
        return corpus.vitals_messages("sample", 1)[0].value


def workloads(scan_model: str, vitals_model: str) -> dict[str, Workload]:
    """Every workload by name: scans of three real sizes, and vital-sign windows."""
    scans = {
        f"scans-{size}": Workload(f"scans-{size}", "scan", size, scan_model, "image", (1, 8, 32))
        for size in corpus.SCAN_FILES
    }
    vitals = Workload("vitals", "vitals", "60x6", vitals_model, "window", (1, 16, 64))
    cnn = Workload("scans-densenet121", "scan", "ct512", CNN_MODEL, "image", (1, 8),
                   {"MEDSTREAM_SCAN__MODEL": CNN_MODEL})
    return {**scans, "vitals": vitals, cnn.name: cnn}
