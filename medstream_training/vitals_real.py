"""Vital-sign windows whose HR channel is a real recording's heart rate.

Each recording's 2 Hz HR series (medstream_training.real_signals) is cut into segments of
TRAJECTORY_LEN steps (50 s); each segment is paired with COMPANIONS synthetic patients that
supply the other five channels (baselines, AR(1) noise, deterioration episodes on those five,
missingness: the simulator of vitals_data). So in these windows:
- REAL: the HR values and their dynamics (absolute bpm, not just the variability shape);
- SYNTHETIC: spo2, rr, sbp, dbp, temp, the missingness;
- RULE-DERIVED: the risk label (NEWS2-style partial score >= 5 within HORIZON steps), computed
  on the real HR and the synthetic channels: not an outcome.

Split by time within each recording, as the simulator's MIT-BIH split: the first 2/3 of
`mitbih-208` and `heartpy-data3` may train, their last 1/3 tests; `heartpy-data2` (a separate
recording, noisier, at another sample rate) only tests. `heartpy-data` (25 s: 31 HR samples) is shorter than one
window plus the label horizon, so it only checks the beat detector.
"""

from __future__ import annotations

import zlib

import numpy as np

from medstream_training.real_signals import HEARTPY_FILES, heart_rate, real_recordings
from medstream_training.vitals_data import (
    HORIZON,
    TRAJECTORY_LEN,
    VitalsSet,
    concat,
    observe,
    real_hr_patient,
    trajectory_windows,
)
from worker.preprocess.vitals import WINDOW_LEN

COMPANIONS = 10
TRAIN_FRACTION = 2 / 3
SPLIT_RECORDINGS = ("mitbih-208", "heartpy-data3")
TEST_ONLY_RECORDINGS = ("heartpy-data2",)
DETECTOR_ONLY = f"heartpy-{HEARTPY_FILES[0].split('.')[0]}"


def real_series() -> dict[str, np.ndarray]:
    """{recording name: HR series at 2 Hz (bpm, NaN = no reading)} of every real recording."""
    return {r.name: heart_rate(r) for r in real_recordings()}


def split(series: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(training parts, test parts): first/last part of the split recordings, test-only whole."""
    train, test = {}, {}
    for name in SPLIT_RECORDINGS:
        cut = int(TRAIN_FRACTION * series[name].size)
        train[name], test[name] = series[name][:cut], series[name][cut:]
    for name in TEST_ONLY_RECORDINGS:
        test[name] = series[name]
    return train, test


def segments(hr: np.ndarray, length: int = TRAJECTORY_LEN) -> list[np.ndarray]:
    """ceil(n / length) segments of `length` steps spread evenly over the series (the last
    ones overlap a little so no sample is left out); none if it is shorter than that."""
    if hr.size < max(length, WINDOW_LEN // 2 + HORIZON + 1):
        return []
    count = -(-hr.size // length)
    starts = np.round(np.linspace(0, hr.size - length, count)).astype(int)
    return [hr[s:s + length] for s in starts]


def recording_windows(name: str, hr: np.ndarray, seed: int, first_group: int = 0,
                      companions: int = COMPANIONS, stride: int = 3) -> VitalsSet:
    """Windows of every segment of `hr` with `companions` synthetic companions each; one group
    per segment (its companions share the real HR, so they are not independent samples)."""
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    parts = []
    for index, segment in enumerate(segments(hr)):
        for _ in range(companions):
            truth = real_hr_patient(segment, rng)
            observed = observe(truth, rng)
            for row, measured in zip(observed, np.isfinite(segment)):
                row[0] = row[0] if measured else None
            parts.append(trajectory_windows(truth, observed, first_group + index, stride))
    return concat(parts)


def real_sets(parts: dict[str, np.ndarray], seed: int, companions: int = COMPANIONS) -> dict[str, VitalsSet]:
    """{recording: windows} for the given series, with groups distinct across recordings."""
    sets, group = {}, 0
    for name, hr in parts.items():
        if segments(hr):
            sets[name] = recording_windows(name, hr, seed, group, companions)
            group = int(sets[name].groups.max()) + 1
    return sets
