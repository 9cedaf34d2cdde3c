"""Training, export and evaluation of the served models (the `train` extra: torch, onnx).

`triton_models/` beside this package is only the Triton model repository
(`<model>/config.pbtxt`, `<model>/<version>/model.onnx`); what builds it lives here.
"""

from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1] / "triton_models"
"""The model repository root passed to tritonserver --model-repository."""
CHECKPOINTS = Path(__file__).resolve().parent / "checkpoints"
"""Trained weights (torch state dicts) that `medstream models build --from-checkpoint` exports."""
SCAN_MODEL = "scan_cnn"
VITALS_MODEL = "vitals_lstm"
