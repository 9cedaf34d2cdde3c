"""Triton model repository (scan_cnn, vitals_lstm) and the code that trains and exports it.

The model directories hold only config.pbtxt and 1/model.onnx; the Python package next to
them (nets, training, export, evaluation, CLI) needs the `train` extra (torch).
"""

from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent
"""The model repository root passed to tritonserver --model-repository."""
SCAN_MODEL = "scan_cnn"
VITALS_MODEL = "vitals_lstm"
