"""Beat detection and heart-rate series of the real recordings (medstream_training.real_signals)."""

from __future__ import annotations

import hashlib
import sys

import numpy as np
import pytest
from scipy.io import loadmat

from medstream_training.real_signals import (
    HEARTPY_BPM,
    HEARTPY_FILES,
    MAX_GAP_S,
    Recording,
    artefact_free,
    ecg_peaks,
    heart_rate,
    load_heartpy,
    mean_rate,
    monitor_rate,
    package_dir,
    ppg_peaks,
    real_recordings,
)
from medstream_training.vitals_data import real_heart_rate

FS = 100.0


def pulse_wave(beats: np.ndarray, seconds: float, seed: int = 0) -> np.ndarray:
    """A PPG-like wave: a systolic pulse 0.15 s after each beat and a dicrotic wave 0.3 s
    later at 45% of its height, on a drifting baseline with noise."""
    t = np.arange(0, seconds, 1 / FS)
    wave = sum(np.exp(-0.5 * ((t - b - 0.15) / 0.07) ** 2)
               + 0.45 * np.exp(-0.5 * ((t - b - 0.45) / 0.09) ** 2) for b in beats)
    rng = np.random.default_rng(seed)
    return 500 + 200 * wave + 40 * np.sin(2 * np.pi * 0.2 * t) + rng.normal(0, 4, t.size)


def beat_times(rates_bpm: np.ndarray) -> np.ndarray:
    return np.cumsum(60.0 / rates_bpm)


def test_ppg_peaks_find_each_systolic_peak_not_the_dicrotic_wave() -> None:
    beats = beat_times(np.linspace(60, 110, 70))  # the rate rises from 60 to 110 bpm
    peaks = ppg_peaks(pulse_wave(beats, beats[-1] + 1.0), FS) / FS
    truth = beats[1:-1] + 0.15
    inside = peaks[(peaks > truth[0] - 0.3) & (peaks < truth[-1] + 0.3)]
    assert inside.size == truth.size
    assert np.abs(inside - truth).max() < 0.04


def test_lost_signal_gives_no_beats_and_a_missing_rate() -> None:
    beats = beat_times(np.full(90, 75.0))
    wave = pulse_wave(beats, beats[-1] + 1.0)
    lost = (np.arange(wave.size) / FS > 30) & (np.arange(wave.size) / FS < 40)
    wave[lost] = 0.0 + np.random.default_rng(1).normal(0, 1, lost.sum())  # sensor off: noise only
    peaks = ppg_peaks(wave, FS) / FS
    assert not ((peaks > 30.5) & (peaks < 38.5)).any()  # (the zero-phase filter rings ~1 s before the return)
    hr = heart_rate(Recording("synthetic", "ppg", FS, wave, "test"))
    assert np.isnan(hr).sum() >= 2 * 8 and np.nanmax(np.abs(hr - 75.0)) < 1.5  # artefact intervals rejected


def test_artefact_free_rejects_missed_and_extra_beats() -> None:
    rr = np.full(20, 0.8)
    rr[5], rr[12], rr[13] = 1.6, 0.3, 0.5  # a missed beat; an extra beat splitting an interval
    ok = artefact_free(rr)
    assert not ok[[5, 12, 13]].any() and ok[[0, 4, 6, 11, 14, 19]].all()
    assert not artefact_free(np.full(12, 2.0)).any()  # 30 bpm: implausible however regular


def test_monitor_rate_averages_eight_intervals_and_marks_gaps() -> None:
    peaks = np.round(np.concatenate([np.arange(0, 20, 0.8), np.arange(30, 50, 0.6)]) * FS).astype(int)
    rr = np.diff(peaks) / FS
    hr = monitor_rate(peaks, FS, rr < 1.0, max_gap_s=MAX_GAP_S)
    finite = hr[np.isfinite(hr)]
    assert np.isclose(finite[0], 75.0) and np.isclose(finite[-1], 100.0)
    assert np.isnan(hr).sum() == pytest.approx(2 * 11.4, abs=1)  # 19.2 s to 30.6 s without a beat, at 2 Hz


def test_ecg_peaks_on_spikes() -> None:
    t = np.arange(0, 20, 1 / 360)
    beats = np.arange(0.5, 19.5, 0.75)
    ecg = sum(np.exp(-0.5 * ((t - b) / 0.01) ** 2) for b in beats) + 0.05 * np.sin(2 * np.pi * 0.3 * t)
    peaks = ecg_peaks(ecg, 360.0) / 360.0
    assert peaks.size == beats.size and np.abs(peaks - beats).max() < 0.02


def test_mitbih_208_series_is_unchanged() -> None:
    """The shipped vitals_lstm was trained on exactly this series: `models build` reproduces
    its ONNX bytes only while it stays the same."""
    hr = real_heart_rate()
    assert hr.shape == (592,)
    assert hashlib.sha256(hr.tobytes()).hexdigest() == (
        "fd3fa410570fcfb52029fd7beac57f3bedb89c3eb5903f627487d6994acc8602")


def test_heartpy_recordings_read_without_importing_heartpy() -> None:
    recordings = {r.name: r for r in real_recordings()}
    assert "heartpy" not in sys.modules
    data, data2, data3 = (recordings[f"heartpy-{f.split('.')[0]}"] for f in HEARTPY_FILES)
    assert (data.fs, data.signal.size) == (100.0, 2483)
    assert data2.fs == pytest.approx(116.996, abs=1e-3) and data2.signal.size == 15000
    assert data3.fs == pytest.approx(100.420, abs=1e-3) and data3.signal.size == 68476
    assert {r.kind for r in (data, data2, data3)} == {"ppg"} and recordings["mitbih-208"].kind == "ecg"


def test_heartpy_log_and_mat_files_hold_the_same_recordings() -> None:
    folder = package_dir("heartpy") / "data"
    for stem in ("data", "data2"):
        assert (folder / f"{stem}.log").read_bytes() == (folder / f"{stem}.csv").read_bytes()
    for name in HEARTPY_FILES:
        mat = loadmat(str(folder / name.replace(".csv", ".mat")))
        assert np.array_equal(mat["hr"].ravel().astype(float), load_heartpy(name).signal)


@pytest.mark.parametrize("filename", HEARTPY_FILES)
def test_mean_rate_agrees_with_heartpy(filename: str) -> None:
    recording = load_heartpy(filename)
    assert mean_rate(recording) == pytest.approx(HEARTPY_BPM[recording.name], abs=0.5)
    hr = heart_rate(recording)
    assert np.nanmin(hr) > 40 and np.nanmax(hr) < 180
