"""What is benchmarked: one workload per model and input size class.

A workload knows its model and input tensor, how to make unique messages, and how to turn a
message into a model input with the worker's own decoding (worker.contracts, worker.preprocess).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pydicom

from medstream_tools.bench import corpus
from worker.contracts import decode_vitals
from worker.preprocess import dicom_to_tensor, window_to_tensor


def decode_scan(value: bytes) -> tuple[str, np.ndarray]:
    """Raw DICOM Part-10 bytes -> (SOPInstanceUID, CNN input [1, 128, 128])."""
    ds = pydicom.dcmread(io.BytesIO(value))
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

    @property
    def decode(self) -> Callable[[bytes], tuple[str, np.ndarray]]:
        """Decode + preprocess one message value into (event id, model input)."""
        return decode_scan if self.kind == "scan" else decode_window

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
    return {**scans, "vitals": vitals}
