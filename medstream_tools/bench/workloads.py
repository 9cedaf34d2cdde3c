"""What is benchmarked: one workload per model and input size class.

A workload knows its model and input tensor, how to make unique messages, and how to turn a
message into a model input with the worker's own decoding (worker.contracts, worker.preprocess).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medstream_tools.bench import corpus
from medstream_tools.soak.fixture_scans import fixture_rules
from medstream_training import REPOSITORY
from worker.contracts import decode_vitals
from worker.preprocess import dicom_to_tensor, window_to_tensor
from worker.preprocess.fast_dicom import scan_tensor
from worker.preprocess.formats import input_format
from worker.scan_input import read_dicom

CNN_MODEL = "bench_densenet121"  # medstream_tools/bench/densenet.py, loaded at bench time
XCEPTION_MODELS = {"chest_xray_pneumonia": "scans-xception-chest",
                   "brain_mri_tumour": "scans-xception-brain"}
"""The imported models (`medstream models build`) -> their workload: the benchmark's
realistic-size CNNs, fed DICOMs of their packages' bundled images (bundled.py)."""
SHIPPED_RULES = REPOSITORY / "routing.yaml"


def decode_scan(value: bytes) -> tuple[str, np.ndarray]:
    """Raw DICOM Part-10 bytes -> (SOPInstanceUID, CNN input [1, 128, 128]), as the worker does
    (parse, then the fast pixel path where it applies)."""
    ds = read_dicom(value)
    return str(ds.SOPInstanceUID), scan_tensor(ds)


def decode_scan_pydicom(value: bytes) -> tuple[str, np.ndarray]:
    """The same through pydicom's general path (`pixel_array`, float64): the reference."""
    ds = read_dicom(value)
    return str(ds.SOPInstanceUID), dicom_to_tensor(ds)


def decode_rgb(value: bytes) -> tuple[str, np.ndarray]:
    """Raw DICOM bytes -> (SOPInstanceUID, Xception input [150, 150, 3]), as the worker does
    for a model declaring `input_format: rgb150_tf_nhwc`."""
    ds = read_dicom(value)
    return str(ds.SOPInstanceUID), input_format("rgb150_tf_nhwc").prepare(ds)


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
    bundled: bool = False  # DICOMs of the model's bundled images, routed by the shipped rules

    @property
    def decode(self) -> Callable[[bytes], tuple[str, np.ndarray]]:
        """Decode + preprocess one message value into (event id, model input)."""
        if self.kind != "scan":
            return decode_window
        return decode_rgb if self.bundled else decode_scan

    @property
    def reference_decode(self) -> Callable[[bytes], tuple[str, np.ndarray]] | None:
        """The general (pydicom) path for gray128 scans; None where there is no other path."""
        return decode_scan_pydicom if self.kind == "scan" and not self.bundled else None

    def routing_rules(self, folder: Path) -> Path | None:
        """The rules file the benchmark worker routes this workload's scans by: the shipped
        rules for the bundled workloads, fixture rules sending the corpus (headed as PA chest
        radiographs) to the model under measurement for the other scan workloads; None (the
        worker's default) for vitals."""
        if self.kind != "scan":
            return None
        if self.bundled:
            return SHIPPED_RULES
        return fixture_rules(folder / f"bench-routing-{self.name}.yaml", self.model)

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
        if self.bundled:
            from medstream_tools.bench import bundled  # PIL and the source packages

            return bundled.messages(self.model, count)
        if self.kind == "scan":
            return corpus.scan_messages(self.size_class, count)
        return corpus.vitals_messages(prefix, count)

    def sample_value(self) -> bytes:
        """One representative message value."""
        if self.bundled:
            return self.messages(1, "sample")[0].value
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
    cnn = Workload("scans-densenet121", "scan", "ct512", CNN_MODEL, "image", (1, 8))
    xception = {name: Workload(name, "scan", model, model, "image", (1, 4, 8), bundled=True)
                for model, name in XCEPTION_MODELS.items()}
    return {**scans, "vitals": vitals, cnn.name: cnn, **xception}
