"""Train the vitals LSTM: BCE on the weak risk label + MSE on the normalised next-step values."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from medstream_training.nets import VitalsLSTM
from medstream_training.vitals_data import VitalsSet
from worker.preprocess.vitals import NORM_CENTRE, NORM_SCALE

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VitalsTrainConfig:
    """Hyper-parameters; the defaults train in well under a minute on 2 CPU cores."""

    epochs: int = 10
    batch_size: int = 256
    lr: float = 3e-3
    forecast_weight: float = 1.0
    seed: int = 0


def train_vitals(data: VitalsSet, config: VitalsTrainConfig) -> VitalsLSTM:
    """Train a fresh VitalsLSTM on every window of `data`."""
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    model = VitalsLSTM()
    windows = torch.from_numpy(data.windows)
    risk = torch.from_numpy(data.risk)[:, None]
    target = torch.from_numpy(((data.next_values - NORM_CENTRE) / NORM_SCALE).astype(np.float32))
    n = len(windows)
    steps = config.epochs * -(-n // config.batch_size)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=config.lr, total_steps=steps)
    model.train()
    for epoch in range(config.epochs):
        order = rng.permutation(n)
        total = 0.0
        for start in range(0, n, config.batch_size):
            idx = torch.from_numpy(order[start:start + config.batch_size])
            logit, forecast = model.heads(windows[idx])
            loss = F.binary_cross_entropy_with_logits(logit, risk[idx]) + (
                config.forecast_weight * F.mse_loss(forecast, target[idx])
            )
            optimiser.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimiser.step()
            schedule.step()
            total += loss.item() * len(idx)
        log.info("vitals_lstm epoch %d/%d loss %.4f", epoch + 1, config.epochs, total / n)
    return model.eval()
