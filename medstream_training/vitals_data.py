"""Vital-sign training windows: a real ECG-derived heart-rate trace plus synthetic patients.

Honest summary (repeated in the model card):
- REAL: the heart-rate *variability pattern* comes from MIT-BIH record 208 (5 min ECG at
  360 Hz, shipped inside scipy 1.11 as scipy/misc/ecg.dat): R peaks -> 8-beat averaged HR ->
  resampled at 2 Hz (medstream_training.real_signals). Its first 2/3 feeds training
  patients, the last 1/3 test patients.
- SYNTHETIC: baselines, the other five channels (AR(1) noise around per-patient baselines),
  deterioration episodes (sepsis-like or respiratory drifts), missingness and quantisation.
- RULE-DERIVED (weak) labels: risk = 1 when a NEWS2-style score (RR, SpO2, SBP, HR, temp;
  no consciousness / O2 items) reaches >= 5 within the next HORIZON steps.
- Forecast targets are the true next-step values of the trajectory (before missingness).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medstream_training.real_signals import heart_rate, load_mitbih_208
from worker.contracts import CHANNELS
from worker.news2 import news2_partial
from worker.preprocess.vitals import WINDOW_LEN, window_to_tensor

TRAJECTORY_LEN = 100
HORIZON = 12
NEWS2_ALERT = 5
_BASE_LOW = np.array([60.0, 95.0, 12.0, 105.0, 60.0, 36.4])
_BASE_HIGH = np.array([95.0, 99.0, 20.0, 140.0, 85.0, 37.4])
_NOISE = np.array([0.0, 0.6, 1.0, 4.0, 3.0, 0.05])  # AR(1) innovations; HR noise is the real trace
_SEPSIS = np.array([30.0, -5.0, 10.0, -40.0, -22.0, 2.0])
_RESPIRATORY = np.array([22.0, -11.0, 14.0, -10.0, -5.0, 0.6])
_DECIMALS = np.array([0, 0, 0, 0, 0, 1])


def real_heart_rate() -> np.ndarray:
    """The HR trace of MIT-BIH 208 (592 samples at 2 Hz)."""
    return heart_rate(load_mitbih_208())


def ar1_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """[n, 6] AR(1) noise (coefficient 0.9) with the per-channel innovations of _NOISE."""
    out = np.zeros((n, len(CHANNELS)))
    noise = np.zeros(len(CHANNELS))
    for t in range(n):
        noise = 0.9 * noise + rng.normal(0.0, _NOISE)
        out[t] = noise
    return out


def episode(n: int, rng: np.random.Generator) -> np.ndarray:
    """[n, 6] drift of a deterioration episode (40% of patients; sepsis-like or respiratory)."""
    if rng.random() >= 0.4:
        return np.zeros((n, len(CHANNELS)))
    onset = int(rng.integers(30, n))
    pattern = _SEPSIS if rng.random() < 0.5 else _RESPIRATORY
    ramp = np.clip((np.arange(n) - onset) / rng.uniform(10, 40), 0.0, 1.0)
    return ramp[:, None] * pattern * rng.uniform(0.4, 1.2)


def synthetic_patient(hr_pool: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One true trajectory [TRAJECTORY_LEN, 6] in physical units (before missingness)."""
    n = TRAJECTORY_LEN
    base = rng.uniform(_BASE_LOW, _BASE_HIGH)
    start = int(rng.integers(0, hr_pool.size - n + 1))
    hr_shape = hr_pool[start:start + n][:: rng.choice([-1, 1])]
    values = np.tile(base, (n, 1))
    values[:, 0] += (hr_shape - hr_shape.mean()) * rng.uniform(0.5, 1.5)
    values += ar1_noise(n, rng)
    values += episode(n, rng)
    values[:, 1] = np.minimum(values[:, 1], 100.0)
    return values


def real_hr_patient(hr: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A trajectory [len(hr), 6] whose HR is the real series `hr` unchanged (NaN gaps filled
    linearly for the rule-derived label) and whose other five channels are synthetic, drawn
    as for synthetic_patient (an episode drifts those five, never the real HR)."""
    n = hr.size
    values = np.tile(rng.uniform(_BASE_LOW, _BASE_HIGH), (n, 1)) + ar1_noise(n, rng)
    values += episode(n, rng) * (np.arange(len(CHANNELS)) != 0)
    measured = np.isfinite(hr)
    values[:, 0] = np.interp(np.arange(n), np.flatnonzero(measured), hr[measured])
    values[:, 1] = np.minimum(values[:, 1], 100.0)
    return values


def observe(values: np.ndarray, rng: np.random.Generator) -> list[list[float | None]]:
    """What a monitor reports: quantised values, random gaps, temperature only now and then."""
    rows = np.round(values * 10.0**_DECIMALS) / 10.0**_DECIMALS
    missing = rng.random(rows.shape) < rng.uniform(0.0, 0.15)
    temp_every = int(rng.integers(1, 16))
    missing[np.arange(len(rows)) % temp_every != 0, CHANNELS.index("temp")] = True
    return [[None if m else float(v) for v, m in zip(row, miss)] for row, miss in zip(rows, missing)]


@dataclass(frozen=True)
class VitalsSet:
    """Model inputs [N, 60, 12], risk labels [N], next-step targets [N, 6], last observations
    [N, 6], the trajectory (patient or real segment) of each window [N] and their count."""

    windows: np.ndarray
    risk: np.ndarray
    next_values: np.ndarray
    last_observed: np.ndarray
    groups: np.ndarray
    patients: int


def trajectory_windows(truth: np.ndarray, observed: list[list[float | None]], group: int,
                       stride: int = 3) -> VitalsSet:
    """The windows of one trajectory, through the worker's window_to_tensor: every `stride`
    steps from half a window in until HORIZON steps before its end."""
    alert = news2_partial(truth) >= NEWS2_ALERT
    windows, risk, targets, last = [], [], [], []
    for end in range(WINDOW_LEN // 2, len(truth) - HORIZON, stride):
        rows = observed[max(0, end - WINDOW_LEN):end]
        windows.append(window_to_tensor(rows))
        risk.append(float(alert[end:end + HORIZON].any()))
        targets.append(truth[end])
        seen = np.array([[np.nan if v is None else v for v in row] for row in rows])
        last.append([col[np.isfinite(col)][-1] if np.isfinite(col).any() else np.nan
                     for col in seen.T])
    return VitalsSet(np.stack(windows), np.array(risk, dtype=np.float32),
                     np.array(targets, dtype=np.float32), np.array(last, dtype=np.float32),
                     np.full(len(windows), group), 1)


def concat(parts: list[VitalsSet]) -> VitalsSet:
    """One set from several (groups are kept as they are: make them distinct)."""
    return VitalsSet(*(np.concatenate([getattr(p, f) for p in parts])
                       for f in ("windows", "risk", "next_values", "last_observed", "groups")),
                     sum(p.patients for p in parts))


def make_windows(patients: int, hr_pool: np.ndarray, seed: int, stride: int = 3) -> VitalsSet:
    """Windows from `patients` synthetic patients (group = patient index)."""
    rng = np.random.default_rng(seed)
    parts = []
    for patient in range(patients):
        truth = synthetic_patient(hr_pool, rng)
        parts.append(trajectory_windows(truth, observe(truth, rng), patient, stride))
    return concat(parts)


def train_test_sets(seed: int, train_patients: int = 300, test_patients: int = 120) -> tuple[VitalsSet, VitalsSet]:
    """Disjoint synthetic patients; train HR from the first 2/3 of the ECG, test from the last 1/3."""
    hr = real_heart_rate()
    cut = 2 * hr.size // 3
    return (make_windows(train_patients, hr[:cut], seed),
            make_windows(test_patients, hr[cut:], seed + 10_000))
