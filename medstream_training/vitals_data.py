"""Vital-sign training windows: a real ECG-derived heart-rate trace plus synthetic patients.

Honest summary (repeated in the model card):
- REAL: the heart-rate *variability pattern* comes from MIT-BIH record 208 (5 min ECG at
  360 Hz, shipped inside scipy 1.11 as scipy/misc/ecg.dat): R peaks -> 8-beat averaged HR ->
  resampled at 2 Hz. Its first 2/3 feeds training patients, the last 1/3 test patients.
- SYNTHETIC: baselines, the other five channels (AR(1) noise around per-patient baselines),
  deterioration episodes (sepsis-like or respiratory drifts), missingness and quantisation.
- RULE-DERIVED (weak) labels: risk = 1 when a NEWS2-style score (RR, SpO2, SBP, HR, temp;
  no consciousness / O2 items) reaches >= 5 within the next HORIZON steps.
- Forecast targets are the true next-step values of the trajectory (before missingness).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.signal import butter, filtfilt, find_peaks

from worker.contracts import CHANNELS
from worker.news2 import news2_partial
from worker.preprocess.vitals import WINDOW_LEN, window_to_tensor

ECG_FS = 360.0
HR_FS = 2.0
MONITOR_BEATS = 8  # bedside monitors report HR averaged over several beats
TRAJECTORY_LEN = 100
HORIZON = 12
NEWS2_ALERT = 5
_BASE_LOW = np.array([60.0, 95.0, 12.0, 105.0, 60.0, 36.4])
_BASE_HIGH = np.array([95.0, 99.0, 20.0, 140.0, 85.0, 37.4])
_NOISE = np.array([0.0, 0.6, 1.0, 4.0, 3.0, 0.05])  # AR(1) innovations; HR noise is the real trace
_SEPSIS = np.array([30.0, -5.0, 10.0, -40.0, -22.0, 2.0])
_RESPIRATORY = np.array([22.0, -11.0, 14.0, -10.0, -5.0, 0.6])
_DECIMALS = np.array([0, 0, 0, 0, 0, 1])


def ecg_path() -> Path:
    """scipy's bundled MIT-BIH 208 excerpt (scipy < 1.12)."""
    spec = importlib.util.find_spec("scipy")
    path = Path(next(iter(spec.submodule_search_locations))) / "misc" / "ecg.dat"
    if not path.is_file():
        raise FileNotFoundError(f"{path} missing: install scipy==1.11.4 (the train extra)")
    return path


def ecg_heart_rate(ecg_mv: np.ndarray, fs: float = ECG_FS, out_fs: float = HR_FS) -> np.ndarray:
    """Monitor-style heart rate (bpm) at out_fs: band-pass, R peaks, 60 / mean of 8 RR intervals."""
    b, a = butter(3, [5.0 / (fs / 2), 15.0 / (fs / 2)], btype="band")
    envelope = np.abs(filtfilt(b, a, ecg_mv))
    peaks, _ = find_peaks(envelope, height=0.3 * np.percentile(envelope, 99.5), distance=int(0.3 * fs))
    rr = np.diff(peaks) / fs
    keep = (rr > 0.25) & (rr < 2.0)
    rr_mean = np.convolve(rr[keep], np.ones(MONITOR_BEATS) / MONITOR_BEATS, mode="valid")
    beat_t, beat_hr = peaks[1:][keep][MONITOR_BEATS - 1:] / fs, 60.0 / rr_mean
    grid = np.arange(beat_t[0], beat_t[-1], 1.0 / out_fs)
    return np.interp(grid, beat_t, beat_hr)


def real_heart_rate() -> np.ndarray:
    """The HR trace of MIT-BIH 208 (about 600 samples at 2 Hz)."""
    ecg = (np.load(ecg_path())["ecg"] - 1024) / 200.0
    return ecg_heart_rate(ecg)


def synthetic_patient(hr_pool: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One true trajectory [TRAJECTORY_LEN, 6] in physical units (before missingness)."""
    n = TRAJECTORY_LEN
    base = rng.uniform(_BASE_LOW, _BASE_HIGH)
    start = int(rng.integers(0, hr_pool.size - n + 1))
    hr_shape = hr_pool[start:start + n][:: rng.choice([-1, 1])]
    values = np.tile(base, (n, 1))
    values[:, 0] += (hr_shape - hr_shape.mean()) * rng.uniform(0.5, 1.5)
    noise = np.zeros(len(CHANNELS))
    for t in range(n):
        noise = 0.9 * noise + rng.normal(0.0, _NOISE)
        values[t] += noise
    if rng.random() < 0.4:
        onset = int(rng.integers(30, n))
        pattern = _SEPSIS if rng.random() < 0.5 else _RESPIRATORY
        ramp = np.clip((np.arange(n) - onset) / rng.uniform(10, 40), 0.0, 1.0)
        values += ramp[:, None] * pattern * rng.uniform(0.4, 1.2)
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
    """Model inputs [N, 60, 12], risk labels [N], next-step targets [N, 6], last observations [N, 6]."""

    windows: np.ndarray
    risk: np.ndarray
    next_values: np.ndarray
    last_observed: np.ndarray
    patients: int


def make_windows(patients: int, hr_pool: np.ndarray, seed: int, stride: int = 3) -> VitalsSet:
    """Windows from `patients` synthetic patients, through the worker's window_to_tensor."""
    rng = np.random.default_rng(seed)
    windows, risk, targets, last = [], [], [], []
    for _ in range(patients):
        truth = synthetic_patient(hr_pool, rng)
        observed = observe(truth, rng)
        alert = news2_partial(truth) >= NEWS2_ALERT
        for end in range(WINDOW_LEN // 2, TRAJECTORY_LEN - HORIZON, stride):
            rows = observed[max(0, end - WINDOW_LEN):end]
            windows.append(window_to_tensor(rows))
            risk.append(float(alert[end:end + HORIZON].any()))
            targets.append(truth[end])
            seen = np.array([[np.nan if v is None else v for v in row] for row in rows])
            last.append([col[np.isfinite(col)][-1] if np.isfinite(col).any() else np.nan
                         for col in seen.T])
    return VitalsSet(np.stack(windows), np.array(risk, dtype=np.float32),
                     np.array(targets, dtype=np.float32), np.array(last, dtype=np.float32), patients)


def train_test_sets(seed: int, train_patients: int = 300, test_patients: int = 120) -> tuple[VitalsSet, VitalsSet]:
    """Disjoint synthetic patients; train HR from the first 2/3 of the ECG, test from the last 1/3."""
    hr = real_heart_rate()
    cut = 2 * hr.size // 3
    return (make_windows(train_patients, hr[:cut], seed),
            make_windows(test_patients, hr[cut:], seed + 10_000))
