"""Vital-sign sources for `produce vitals`: CSV files and the MIT-BIH ECG excerpt in scipy.

Every source returns `Series` on a regular grid; a slot without a sample stays None.
"""

from __future__ import annotations

import csv
import itertools
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from producers.vitals_windows import Row, Series, channel_row, clean, to_grid
from worker.contracts import CHANNELS

log = logging.getLogger(__name__)

TIME_COLUMNS = ("time", "timestamp")
MITBIH_FS = 360.0  # Hz, MIT-BIH Arrhythmia Database record 208 excerpt shipped with scipy
HR_RANGE = (20.0, 250.0)  # beats per minute accepted from the R-R intervals


class SourceError(ValueError):
    """A source that cannot be read at all (missing columns, missing package)."""


@dataclass
class CsvResult:
    """Series read from a CSV plus the rows that were skipped (line number, reason)."""

    series: list[Series]
    skipped: list[tuple[int, str]] = field(default_factory=list)


def _parse_time(text: str, origin: datetime) -> datetime:
    """ISO-8601 (naive = UTC) or seconds since `origin`."""
    text = text.strip()
    try:
        return origin + timedelta(seconds=float(text))
    except ValueError:
        moment = datetime.fromisoformat(text)
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def read_csv(path: Path, *, interval_s: float, origin: datetime) -> CsvResult:
    """One row per sample: `time`, `patient_id`, optional `device_id`, one column per channel.

    `time` is ISO-8601 or seconds since `origin`. Rows with an unreadable time or a
    non-numeric value are skipped and listed; empty/NaN cells are missing samples.
    """
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = [c.strip() for c in reader.fieldnames or []]
        time_col = next((c for c in TIME_COLUMNS if c in columns), None)
        channels = [c for c in columns if c in CHANNELS]
        if time_col is None or "patient_id" not in columns or not channels:
            raise SourceError(
                f"{path}: needs a time/timestamp column, a patient_id column and at least one "
                f"of the channel columns {list(CHANNELS)}; found {columns}"
            )
        samples: dict[tuple[str, str], list[tuple[datetime, Row]]] = defaultdict(list)
        result = CsvResult(series=[])
        for line, raw in enumerate(reader, start=2):
            record = {k.strip(): (v or "") for k, v in raw.items() if k is not None}
            patient = record.get("patient_id", "").strip()
            try:
                if not patient:
                    raise ValueError("empty patient_id")
                moment = _parse_time(record[time_col], origin)
                row = channel_row({c: clean(record.get(c)) for c in channels})
            except (ValueError, KeyError) as exc:
                result.skipped.append((line, str(exc)))
                continue
            device = record.get("device_id", "").strip() or "csv"
            samples[(patient, device)].append((moment, row))
    for (patient, device), rows in samples.items():
        start = min(moment for moment, _ in rows)
        result.series.append(
            Series(patient, device, start, interval_s, to_grid(rows, start, interval_s))
        )
    return result


def _mitbih_ecg() -> np.ndarray:
    """The 5-minute MIT-BIH record 208 excerpt (mV at 360 Hz) from the scipy wheel."""
    try:
        import scipy
    except ImportError as exc:
        raise SourceError("--mitbih needs scipy==1.11.4 (pip install 'medstream[train]')") from exc
    path = Path(scipy.__file__).parent / "misc" / "ecg.dat"
    if not path.exists():
        raise SourceError(f"{path} is missing: --mitbih needs scipy<1.12 (1.11.4 is pinned)")
    with path.open("rb") as handle:
        return (np.load(handle)["ecg"].astype(np.float64) - 1024.0) / 200.0


def r_peaks(ecg: np.ndarray, fs: float) -> np.ndarray:
    """R-peak sample indices: 5-15 Hz band-pass, squared slope, threshold, 300 ms refractory.

    The threshold is low (7 % of the 99th percentile of the slope energy) so that normal beats
    next to large ectopic (PVC) complexes are still found; 498-500 beats in the 5-minute excerpt.
    """
    from scipy.signal import butter, find_peaks, sosfiltfilt

    band = sosfiltfilt(butter(3, [5.0, 15.0], btype="band", fs=fs, output="sos"), ecg)
    energy = np.convolve(np.gradient(band) ** 2, np.ones(int(0.15 * fs)) / (0.15 * fs), "same")
    peaks, _ = find_peaks(energy, height=0.07 * np.percentile(energy, 99), distance=int(0.3 * fs))
    # refine each detection to the largest absolute deflection of the filtered ECG nearby
    half = int(0.075 * fs)
    return np.array(
        [
            p - half + int(np.argmax(np.abs(band[max(p - half, 0) : p + half])))
            for p in peaks
            if p >= half
        ]
    )


def heart_rate_grid(
    peaks: np.ndarray, fs: float, n_samples: int, interval_s: float
) -> list[float | None]:
    """Mean instantaneous heart rate of the beats in each grid slot; None where no beat fell."""
    slots = int(np.ceil(n_samples / fs / interval_s))
    sums, counts = np.zeros(slots), np.zeros(slots)
    times = peaks / fs
    for t_prev, t in itertools.pairwise(times):
        rate = 60.0 / (t - t_prev)
        if HR_RANGE[0] <= rate <= HR_RANGE[1]:
            slot = min(int(t // interval_s), slots - 1)
            sums[slot] += rate
            counts[slot] += 1
    return [float(s / c) if c else None for s, c in zip(sums, counts)]


def mitbih_series(*, interval_s: float, start: datetime) -> Series:
    """Heart rate derived from the real MIT-BIH ECG (other channels are missing, not invented)."""
    ecg = _mitbih_ecg()
    hr = heart_rate_grid(r_peaks(ecg, MITBIH_FS), MITBIH_FS, ecg.size, interval_s)
    rows = [channel_row({"hr": value}) for value in hr]
    return Series("mitbih-208", "mitbih-ecg", start, interval_s, rows)
