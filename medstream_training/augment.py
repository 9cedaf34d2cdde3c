"""Training-time augmentation around the worker's preprocessing.

Geometric crops act on the raw pixels, *then* `pixels_to_tensor` (the worker's function) makes
the tensor; small rotations and intensity jitter act on that tensor. Evaluation and serving
use `pixels_to_tensor` alone.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from worker.preprocess.scan import pixels_to_tensor


def random_crop(pixels: np.ndarray, rng: np.random.Generator, min_frac: float = 0.85) -> np.ndarray:
    """A random crop keeping min_frac..1 of each side (aspect ratio jitter included)."""
    h, w = pixels.shape[:2]
    ch = max(2, round(h * rng.uniform(min_frac, 1.0)))
    cw = max(2, round(w * rng.uniform(min_frac, 1.0)))
    top = int(rng.integers(0, h - ch + 1))
    left = int(rng.integers(0, w - cw + 1))
    return pixels[top:top + ch, left:left + cw]


def augmented_tensor(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One augmented training tensor [1, 128, 128] made through the worker's preprocessing."""
    return pixels_to_tensor(random_crop(pixels, rng))


def jitter(batch: torch.Tensor, rng: np.random.Generator, max_degrees: float = 8.0) -> torch.Tensor:
    """Rotate by up to +/-max_degrees, then gamma/contrast/brightness jitter and noise, in [0, 1]."""
    n = batch.shape[0]
    angles = torch.tensor(rng.uniform(-max_degrees, max_degrees, n) * math.pi / 180, dtype=batch.dtype)
    cos, sin = torch.cos(angles), torch.sin(angles)
    theta = torch.zeros(n, 2, 3, dtype=batch.dtype)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = cos, -sin, sin, cos
    grid = F.affine_grid(theta, list(batch.shape), align_corners=False)
    out = F.grid_sample(batch, grid, padding_mode="border", align_corners=False)

    def per_image(low: float, high: float) -> torch.Tensor:
        return torch.tensor(rng.uniform(low, high, (n, 1, 1, 1)), dtype=batch.dtype)

    out = out.clamp(0, 1) ** per_image(0.75, 1.33)
    out = (out - 0.5) * per_image(0.85, 1.15) + 0.5 + per_image(-0.05, 0.05)
    noise = torch.tensor(rng.normal(0, 0.015, tuple(out.shape)), dtype=batch.dtype)
    return (out + noise).clamp(0, 1)
