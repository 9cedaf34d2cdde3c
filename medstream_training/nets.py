"""Torch definitions of the two served models, with the exact tensor contract of Triton.

- ScanCNN: image [B, 1, 128, 128] -> probabilities [B, N] (softmax over class labels).
- VitalsLSTM: window [B, 60, 12] -> risk [B, 1] in [0, 1], forecast [B, 6] in physical units.
"""

from __future__ import annotations

from itertools import pairwise

import torch
from torch import nn

from worker.contracts import CHANNELS
from worker.preprocess.vitals import NORM_CENTRE, NORM_SCALE


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class ScanCNN(nn.Module):
    """Compact 5-block CNN for single-channel 128x128 scans (~100k parameters)."""

    def __init__(self, num_classes: int, width: int = 16, dropout: float = 0.3) -> None:
        super().__init__()
        chans = [1, width, 2 * width, 4 * width, 4 * width, 8 * width]
        self.features = nn.Sequential(*(_block(a, b) for a, b in pairwise(chans)))
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(chans[-1], num_classes)
        )

    def logits(self, image: torch.Tensor) -> torch.Tensor:
        """Unnormalised class scores, used by the training loss."""
        return self.head(self.features(image))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Class probabilities (softmax), the served output `probabilities`."""
        return torch.softmax(self.logits(image), dim=1)


class VitalsLSTM(nn.Module):
    """LSTM over a [60, 12] window with a risk head and a next-step forecast head.

    The forecast head predicts normalised values; forward() maps them back to physical
    units with the same constants as worker.preprocess.vitals, so Triton serves physical units.
    """

    def __init__(self, hidden: int = 64, layers: int = 1) -> None:
        super().__init__()
        n = len(CHANNELS)
        self.hidden, self.layers = hidden, layers
        self.lstm = nn.LSTM(2 * n, hidden, num_layers=layers, batch_first=True)
        self.risk_head = nn.Linear(hidden, 1)
        self.forecast_head = nn.Linear(hidden, n)
        self.register_buffer("centre", torch.tensor(NORM_CENTRE, dtype=torch.float32))
        self.register_buffer("scale", torch.tensor(NORM_SCALE, dtype=torch.float32))

    def encode(self, window: torch.Tensor) -> torch.Tensor:
        """Last hidden state [B, hidden]; explicit zero states keep the ONNX batch axis dynamic."""
        zeros = window.new_zeros(self.layers, window.shape[0], self.hidden)
        out, _ = self.lstm(window, (zeros, zeros))
        return out[:, -1]

    @staticmethod
    def last_observed(window: torch.Tensor) -> torch.Tensor:
        """Per channel, the last non-missing normalised value of the window [B, 6] (0 if none)."""
        n = len(CHANNELS)
        values, observed = window[..., :n], 1.0 - window[..., n:]
        steps = torch.arange(1, window.shape[1] + 1, dtype=window.dtype).view(1, -1, 1)
        last = torch.argmax(observed * steps, dim=1, keepdim=True)
        return torch.gather(values, 1, last).squeeze(1) * observed.amax(dim=1)

    def heads(self, window: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(risk logit [B, 1], normalised forecast [B, 6]), used by the training losses.

        The forecast is a learned correction to the last observed value of each channel.
        """
        h = self.encode(window)
        return self.risk_head(h), self.last_observed(window) + self.forecast_head(h)

    def forward(self, window: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(risk [B, 1] in [0, 1], forecast [B, 6] in physical units), the served outputs."""
        logit, forecast = self.heads(window)
        return torch.sigmoid(logit), forecast * self.scale + self.centre
