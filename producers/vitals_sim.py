"""SYNTHETIC multi-patient vital-sign streams for load tests (`produce vitals --simulate N`).

Not real patient data. Each simulated patient has plausible adult baselines; every channel
follows a mean-reverting (Ornstein-Uhlenbeck) process; about a quarter of the patients
deteriorate during the run (heart rate and respiratory rate up, SpO2 and blood pressure down,
fever). Measurement follows bedside practice: HR/SpO2/RR every slot, non-invasive blood
pressure every 5 minutes (an arterial line every slot for ~20 % of patients), temperature
every minute, and SpO2 probe-off episodes leave gaps (None), as real feeds do.
"""

from __future__ import annotations

import functools
from datetime import datetime

import numpy as np

from producers.vitals_windows import Row, Series

# per channel (hr, spo2, rr, sbp, dbp, temp): population mean, population sd, OU noise sd,
# OU time constant (s), physiological clip range, decimals reported by a monitor
_MEAN = np.array([78.0, 97.0, 15.0, 122.0, 76.0, 36.9])
_SD = np.array([10.0, 1.2, 2.5, 14.0, 8.0, 0.3])
_NOISE = np.array([3.0, 0.6, 1.5, 5.0, 3.5, 0.05])
_TAU = np.array([60.0, 120.0, 90.0, 300.0, 300.0, 1800.0])
_LOW = np.array([30.0, 70.0, 4.0, 60.0, 30.0, 34.0])
_HIGH = np.array([200.0, 100.0, 50.0, 240.0, 140.0, 42.0])
_DECIMALS = (0, 0, 0, 0, 0, 1)
# change at the peak of a deterioration episode
_DETERIORATION = np.array([35.0, -9.0, 12.0, -35.0, -18.0, 1.6])
NIBP_EVERY_S, TEMP_EVERY_S = 300.0, 60.0
_BLOCK = 256  # steps per block of the vectorised OU recursion


@functools.lru_cache(maxsize=8)
def _ou_kernel(interval_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Per channel [6, B, B] decay^(j-k) for k <= j, and [B, 6] decay^(j+1) (carry-over)."""
    decay = np.exp(-interval_s / _TAU)
    lags = np.arange(_BLOCK)
    gap = lags[:, None] - lags[None, :]
    kernel = np.where(gap[None] >= 0, decay[:, None, None] ** np.maximum(gap, 0)[None], 0.0)
    return kernel, decay[None, :] ** (lags[:, None] + 1)


def _ou_noise(rng: np.random.Generator, steps: int, interval_s: float) -> np.ndarray:
    """Ornstein-Uhlenbeck deviations [steps, 6]: x[i] = decay * x[i-1] + e[i], x[-1] = 0.

    Computed block-wise with a lower-triangular matrix of decay powers (exact, no per-step
    Python loop).
    """
    decay = np.exp(-interval_s / _TAU)
    shocks = _NOISE * np.sqrt(1 - decay**2) * rng.standard_normal((steps, 6))
    kernel, carry = _ou_kernel(interval_s)
    out, state = np.empty((steps, 6)), np.zeros(6)
    for start in range(0, steps, _BLOCK):
        block = shocks[start : start + _BLOCK]
        n = len(block)
        out[start : start + n] = (
            np.einsum("cjk,kc->jc", kernel[:, :n, :n], block) + carry[:n] * state
        )
        state = out[start + n - 1]
    return out


def _trajectory(rng: np.random.Generator, steps: int, interval_s: float) -> np.ndarray:
    """True physiological values [steps, 6] of one patient."""
    base = rng.normal(_MEAN, _SD)
    base[4] = min(base[4], base[3] - 25.0)  # diastolic stays well below systolic
    drift = np.zeros((steps, 6))
    if rng.random() < 0.25 and steps > 10:
        onset = int(rng.uniform(0.1, 0.6) * steps)
        ramp = max(int(rng.uniform(0.1, 0.3) * steps), 1)
        level = np.clip((np.arange(steps) - onset) / ramp, 0.0, 1.0)
        drift = level[:, None] * _DETERIORATION * rng.uniform(0.6, 1.0)
    values = base + drift + _ou_noise(rng, steps, interval_s)
    values = np.clip(values, _LOW, _HIGH)
    values[:, 4] = np.maximum(
        np.minimum(values[:, 4], values[:, 3] - 15.0), _LOW[4]
    )  # pulse pressure
    return values


def _observed(rng: np.random.Generator, values: np.ndarray, interval_s: float) -> list[Row]:
    """What a monitor reports: sampling schedules and probe-off gaps as None."""
    steps = values.shape[0]
    seen = np.ones_like(values, dtype=bool)
    t = np.arange(steps) * interval_s
    if rng.random() >= 0.2:  # no arterial line: cuff pressure every NIBP_EVERY_S
        cuff = (t % NIBP_EVERY_S) < interval_s
        seen[:, 3] &= cuff
        seen[:, 4] &= cuff
    seen[:, 5] &= (t % TEMP_EVERY_S) < interval_s
    i = 0
    while i < steps:  # SpO2 probe-off episodes, ~1 per 10 minutes, 5-60 s each
        i += int(rng.exponential(600.0 / interval_s)) + 1
        seen[i : i + int(rng.uniform(5, 60) / interval_s) + 1, 1] = False
    reported = np.column_stack([np.round(values[:, c], d) for c, d in enumerate(_DECIMALS)])
    cells = reported.astype(object)
    cells[~seen] = None
    return cells.tolist()


def simulate(
    n_patients: int, *, duration_s: float, interval_s: float, start: datetime, seed: int = 0
) -> list[Series]:
    """`n_patients` SYNTHETIC series of `duration_s` seconds each (deterministic for a seed)."""
    steps = max(int(duration_s / interval_s), 1)
    series = []
    for index in range(n_patients):
        rng = np.random.default_rng([seed, index])
        values = _trajectory(rng, steps, interval_s)
        series.append(
            Series(
                f"SIM-{index:05d}",
                f"sim-monitor-{index % 97:02d}",
                start,
                interval_s,
                _observed(rng, values, interval_s),
            )
        )
    return series
