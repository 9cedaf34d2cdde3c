"""Vital-sign windowing, message format, CSV/MIT-BIH/simulated sources."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from producers.deid.pseudonym import Pseudonymizer
from producers.produce_vitals import deidentify_window, interleaved
from producers.vitals_sim import simulate
from producers.vitals_sources import heart_rate_grid, mitbih_series, read_csv
from producers.vitals_windows import Series, encode_window, event_id, to_grid, windows
from worker.contracts import CHANNELS, VITALS_SCHEMA, decode_vitals
from worker.preprocess.vitals import window_to_tensor

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _series(n: int) -> Series:
    return Series("MRN1", "bed1", T0, 1.0, [[float(i)] + [None] * 5 for i in range(n)])


def test_windows_have_length_hop_and_start() -> None:
    result = list(windows(_series(100), 60, 20))
    assert [w.start - T0 for w in result] == [timedelta(seconds=s) for s in (0, 20, 40)]
    assert all(len(w.values) == 60 for w in result)
    assert result[1].values[0][0] == 20.0


def test_short_series_gives_one_short_window() -> None:
    (only,) = windows(_series(7), 60, 30)
    assert len(only.values) == 7


def test_grid_keeps_gaps_as_missing_and_never_invents() -> None:
    samples = [(T0, [80.0] + [None] * 5), (T0 + timedelta(seconds=3), [None, 97.0] + [None] * 4)]
    grid = to_grid(samples, T0, 1.0)
    assert grid[0][0] == 80.0 and grid[1] == [None] * 6 and grid[2] == [None] * 6
    assert grid[3][:2] == [None, 97.0]


def test_message_matches_the_contract_and_the_worker_decoder() -> None:
    window = next(windows(_series(60), 60, 30))
    body = json.loads(encode_window(window))
    assert body["schema"] == VITALS_SCHEMA and body["channels"] == list(CHANNELS)
    assert body["start"] == "2026-01-01T00:00:00.000Z" and body["interval_s"] == 1.0
    decoded = decode_vitals(encode_window(window))
    assert decoded.event_id == event_id(window) and decoded.values[5][0] == 5.0
    assert window_to_tensor(decoded.values).shape == (60, 12)


def test_event_ids_are_deterministic_and_distinct() -> None:
    a, b = list(windows(_series(90), 60, 30))
    assert event_id(a) == event_id(next(windows(_series(90), 60, 30)))
    assert event_id(a) != event_id(b)


def test_window_deidentification_replaces_patient_and_device() -> None:
    window = next(windows(_series(60), 60, 30))
    out = deidentify_window(window, Pseudonymizer(b"unit-test-key-0123456789"))
    assert out.patient_id.startswith("PSN-") and "MRN1" not in encode_window(out).decode()
    assert out.device_id.startswith("DEV-") and out.values == window.values


def test_csv_rows_become_series_and_bad_rows_are_listed(tmp_path: Path) -> None:
    path = tmp_path / "v.csv"
    path.write_text(
        "time,patient_id,device_id,hr,spo2\n"
        "2026-01-01T00:00:00Z,A,bed1,80,97\n"
        "2026-01-01T00:00:02Z,A,bed1,,96\n"
        "2026-01-01T00:00:01Z,B,bed2,abc,96\n"
        "not-a-time,B,bed2,70,96\n"
        "5,B,bed2,71,NaN\n"
    )
    result = read_csv(path, interval_s=1.0, origin=T0)
    by_patient = {s.patient_id: s for s in result.series}
    assert by_patient["A"].rows == [
        [80.0, 97.0] + [None] * 4,
        [None] * 6,
        [None, 96.0] + [None] * 4,
    ]
    assert by_patient["B"].start == T0 + timedelta(seconds=5)
    assert by_patient["B"].rows == [[71.0] + [None] * 5]
    assert [line for line, _ in result.skipped] == [4, 5]


def test_heart_rate_grid_averages_beats_per_slot() -> None:
    fs = 100.0
    peaks = np.array([0, 100, 200, 250, 300])  # RR 1 s, 1 s, 0.5 s, 0.5 s
    assert heart_rate_grid(peaks, fs, 500, 1.0) == [None, 60.0, 90.0, 120.0, None]


def test_mitbih_heart_rate_is_physiological() -> None:
    series = mitbih_series(interval_s=1.0, start=T0)
    hr = [row[0] for row in series.rows if row[0] is not None]
    assert len(series.rows) == 300 and len(hr) > 280
    assert 80 < float(np.median(hr)) < 120  # record 208: ~100 beats/min with PVCs
    assert all(row[1:] == [None] * 5 for row in series.rows)


def test_simulation_is_deterministic_plausible_and_has_gaps() -> None:
    first = simulate(8, duration_s=900, interval_s=1.0, start=T0, seed=3)
    again = simulate(8, duration_s=900, interval_s=1.0, start=T0, seed=3)
    assert [s.rows for s in first] == [s.rows for s in again]
    values = np.array([[np.nan if v is None else v for v in row] for s in first for row in s.rows])
    assert np.nanmin(values[:, 1]) >= 70 and np.nanmax(values[:, 1]) <= 100  # SpO2 %
    assert (values[:, 4] < values[:, 3])[~np.isnan(values[:, 3])].all()  # dbp < sbp
    assert np.isnan(values[:, 3]).mean() > 0.5  # cuff pressure is intermittent


def test_interleaved_stream_is_in_time_order_across_patients() -> None:
    stream = list(interleaved(simulate(3, duration_s=180, interval_s=1.0, start=T0), 60, 30))
    assert len({w.patient_id for w in stream}) == 3
    assert [w.start for w in stream] == sorted(w.start for w in stream)
