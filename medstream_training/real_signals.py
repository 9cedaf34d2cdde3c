"""Real heart-rate series from the recordings that install here (training and evaluation only).

- MIT-BIH Arrhythmia DB record 208: a 5-min ECG excerpt at 360 Hz inside the scipy 1.11 wheel
  (`scipy/misc/ecg.dat`); many PVCs, no beat annotations shipped.
- heartpy 1.2.7 (PyPI metadata: GPL; the wheel's LICENSE file says MIT - we treat it as GPL and
  only read its data files; the package is never imported: its import needs `pkg_resources`,
  which current setuptools no longer ships). `heartpy/data/` holds three real PPG recordings:
  `data.csv` (no header, 2,483 samples at 100 Hz per heartpy's docs: 25 s), `data2.csv`
  (`timer,hr`: a millisecond timer, ~117 Hz, 128 s, with signal loss in its first 45 s) and
  `data3.csv` (`datetime,hr`: wall-clock stamps of ~16 ms resolution, 68,476 samples over
  682 s: ~100.4 Hz, the mean rate heartpy's `get_samplerate_datetime` computes). `data.log`
  and `data2.log` are byte-identical copies of the CSVs; `data*.mat` hold the same arrays.

Beats come from our own detectors (scipy.signal), then a monitor-style rate: 60 s / mean of
the last 8 accepted beat intervals, on a 2 Hz grid; NaN where no accepted beat is near.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from scipy.ndimage import median_filter
from scipy.signal import butter, filtfilt, find_peaks

ECG_FS = 360.0
HR_FS = 2.0
MONITOR_BEATS = 8  # bedside monitors report HR averaged over several beats
HEARTPY_FILES = ("data.csv", "data2.csv", "data3.csv")
HEARTPY_DATA_FS = 100.0  # data.csv has no timer; heartpy's docs: "sampled at 100Hz"
PPG_BAND = (0.5, 5.0)  # Hz: pulse fundamental and first harmonics, no baseline drift
RR_PLAUSIBLE = (60.0 / 180.0, 60.0 / 40.0)  # s: 40-180 bpm
RR_ARTEFACT = 0.3  # an interval this far (relative) from its neighbours' median is an artefact
MIN_PROMINENCE = 0.25  # of the recording's median pulse prominence: weaker peaks are noise
MAX_GAP_S = 4.0  # no accepted beat for longer than this: the rate is missing (NaN)
HEARTPY_BPM = {"heartpy-data": 58.90, "heartpy-data2": 62.37, "heartpy-data3": 97.33}
"""heartpy's own `process()` bpm of its recordings (heartpy 1.2.7 run once outside this
project with a `pkg_resources` stub, at the sample rates above): our detector's reference."""


@dataclass(frozen=True)
class Recording:
    """One real waveform: `kind` is "ecg" or "ppg", `fs` its sample rate in Hz."""

    name: str
    kind: str
    fs: float
    signal: np.ndarray
    source: str


def package_dir(package: str) -> Path:
    """An installed package's folder, found without importing (executing) it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {package!r} is not installed: pip install 'medstream[train]'")
    return Path(next(iter(spec.submodule_search_locations)))


def ecg_path() -> Path:
    """scipy's bundled MIT-BIH 208 excerpt (scipy < 1.12)."""
    path = package_dir("scipy") / "misc" / "ecg.dat"
    if not path.is_file():
        raise FileNotFoundError(f"{path} missing: install scipy==1.11.4 (the train extra)")
    return path


def load_mitbih_208() -> Recording:
    """The ECG in millivolts: (raw - 1024) / 200, as scipy.misc.electrocardiogram does."""
    ecg = (np.load(ecg_path())["ecg"] - 1024) / 200.0
    return Recording("mitbih-208", "ecg", ECG_FS, ecg, "MIT-BIH Arrhythmia DB record 208 (scipy 1.11.4)")


def read_heartpy_csv(path: Path) -> tuple[np.ndarray, float]:
    """(samples, sample rate) of one of heartpy's three CSV layouts (see the module docstring)."""
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    if len(header) == 1:
        return np.array([float(v) for v in lines if v], dtype=np.float64), HEARTPY_DATA_FS
    rows = [line.split(",") for line in lines[1:] if line]
    samples = np.array([float(r[1]) for r in rows])
    if header[0] == "timer":  # milliseconds
        elapsed = float(rows[-1][0]) - float(rows[0][0])
        return samples, 1000.0 * len(rows) / elapsed  # heartpy's get_samplerate_mstimer
    if header[0] == "datetime":
        stamps = [datetime.fromisoformat(r[0]) for r in rows]
        return samples, len(rows) / (stamps[-1] - stamps[0]).total_seconds()  # ..._datetime
    raise ValueError(f"{path}: unknown heartpy CSV layout {header}")


def load_heartpy(filename: str) -> Recording:
    """One of heartpy's PPG recordings, read from its data folder."""
    path = package_dir("heartpy") / "data" / filename
    samples, fs = read_heartpy_csv(path)
    return Recording(f"heartpy-{Path(filename).stem}", "ppg", fs, samples, f"heartpy 1.2.7 data/{filename}")


def real_recordings() -> list[Recording]:
    """Every real recording: MIT-BIH 208 and heartpy's three PPGs."""
    return [load_mitbih_208(), *(load_heartpy(f) for f in HEARTPY_FILES)]


def _bandpass(x: np.ndarray, fs: float, low: float, high: float, order: int) -> np.ndarray:
    b, a = butter(order, [low / (fs / 2), high / (fs / 2)], btype="band")
    return filtfilt(b, a, np.asarray(x, dtype=np.float64))


def ecg_peaks(ecg_mv: np.ndarray, fs: float = ECG_FS) -> np.ndarray:
    """R-peak sample indices: 5-15 Hz band-pass envelope, peaks >= 0.3 x its 99.5th percentile."""
    envelope = np.abs(_bandpass(ecg_mv, fs, 5.0, 15.0, 3))
    peaks, _ = find_peaks(envelope, height=0.3 * np.percentile(envelope, 99.5), distance=int(0.3 * fs))
    return peaks


def beat_period(y: np.ndarray, fs: float) -> float:
    """Dominant beat period (s) of a filtered pulse wave: the first autocorrelation maximum in
    the plausible range that reaches 0.7 of the highest (so not a multiple of the period)."""
    y = y - y.mean()
    ac = np.correlate(y, y, "full")[y.size - 1:]
    lags = np.arange(int(RR_PLAUSIBLE[0] * fs), min(int(RR_PLAUSIBLE[1] * fs), ac.size - 2) + 1)
    if ac[0] <= 0 or lags.size < 3:
        return float(np.mean(RR_PLAUSIBLE))
    a = ac[lags]
    local = np.flatnonzero((a[1:-1] >= a[:-2]) & (a[1:-1] >= a[2:]) & (a[1:-1] >= 0.7 * a.max())) + 1
    return float(lags[local[0] if local.size else int(np.argmax(a))] / fs)


def ppg_peaks(ppg: np.ndarray, fs: float, block_s: float = 8.0) -> np.ndarray:
    """Systolic-peak sample indices of a PPG.

    Band-pass, then candidate maxima; a candidate is kept when it is the highest within 0.6 of
    the local beat period (per half-overlapping `block_s` block, median of 5 blocks so that an
    artefact does not double it), which drops the dicrotic wave, and
    when its prominence reaches MIN_PROMINENCE of the median kept prominence (flat or lost
    signal yields no beats).
    """
    y = _bandpass(ppg, fs, *PPG_BAND, 2)
    candidates, props = find_peaks(y, distance=max(1, int(RR_PLAUSIBLE[0] * fs)), prominence=0.0)
    if candidates.size == 0:
        return candidates
    step = max(1, int(block_s * fs))
    starts = np.arange(0, max(1, y.size - step + 1), step // 2)
    centres = (starts + step / 2) / fs
    periods = median_filter(np.array([beat_period(y[s:s + step], fs) for s in starts]), size=5, mode="nearest")
    times = candidates / fs
    reach = 0.6 * np.interp(times, centres, periods)
    keep = np.array([y[c] >= y[candidates[np.abs(times - t) < r]].max()
                     for c, t, r in zip(candidates, times, reach)])
    prominence = props["prominences"]
    strong = prominence >= MIN_PROMINENCE * np.median(prominence[keep])
    return candidates[keep & strong]


def monitor_rate(peaks: np.ndarray, fs: float, accepted: np.ndarray, out_fs: float = HR_FS,
                 max_gap_s: float | None = None) -> np.ndarray:
    """Heart rate (bpm) on an out_fs grid: 60 / mean of the last MONITOR_BEATS accepted beat
    intervals, linearly interpolated between beats; with `max_gap_s`, NaN between accepted
    beats further apart than that. `accepted` flags each of the peaks.size - 1 intervals."""
    rr = np.diff(peaks) / fs
    rr_mean = np.convolve(rr[accepted], np.ones(MONITOR_BEATS) / MONITOR_BEATS, mode="valid")
    beat_t, beat_hr = peaks[1:][accepted][MONITOR_BEATS - 1:] / fs, 60.0 / rr_mean
    grid = np.arange(beat_t[0], beat_t[-1], 1.0 / out_fs)
    hr = np.interp(grid, beat_t, beat_hr)
    if max_gap_s is not None:
        after = np.clip(np.searchsorted(beat_t, grid, side="right"), 1, beat_t.size - 1)
        hr[beat_t[after] - beat_t[after - 1] > max_gap_s] = np.nan
    return hr


def artefact_free(rr: np.ndarray) -> np.ndarray:
    """Intervals within 40-180 bpm and within RR_ARTEFACT of the median of their 9 neighbours."""
    plausible = (rr >= RR_PLAUSIBLE[0]) & (rr <= RR_PLAUSIBLE[1])
    local = median_filter(rr, size=9, mode="nearest")
    return plausible & (np.abs(rr - local) <= RR_ARTEFACT * local)


def beats(recording: Recording) -> tuple[np.ndarray, np.ndarray]:
    """(beat sample indices, accepted flag of each interval). ECG: intervals of 0.25-2 s (PVC
    couplets kept: the 8-beat average smooths them as a monitor does; the shipped model was
    trained on this); PPG: `artefact_free` intervals."""
    if recording.kind == "ecg":
        peaks = ecg_peaks(recording.signal, recording.fs)
        rr = np.diff(peaks) / recording.fs
        return peaks, (rr > 0.25) & (rr < 2.0)
    peaks = ppg_peaks(recording.signal, recording.fs)
    return peaks, artefact_free(np.diff(peaks) / recording.fs)


def heart_rate(recording: Recording, out_fs: float = HR_FS) -> np.ndarray:
    """The recording's monitor-style heart-rate series at out_fs (bpm; NaN = no reading)."""
    peaks, accepted = beats(recording)
    return monitor_rate(peaks, recording.fs, accepted, out_fs, None if recording.kind == "ecg" else MAX_GAP_S)


def mean_rate(recording: Recording) -> float:
    """60 s / the mean accepted beat interval: the figure heartpy reports as `bpm`."""
    peaks, accepted = beats(recording)
    return float(60.0 / (np.diff(peaks)[accepted] / recording.fs).mean())
