"""Real-HR vital-sign windows, their evaluation with cluster intervals, and the card block."""

from __future__ import annotations

import numpy as np
import pytest

from medstream_training.card import splice_block
from medstream_training.stats import cluster_bootstrap
from medstream_training.vitals_card import VITALS_BEGIN, VITALS_END, vitals_section
from medstream_training.vitals_data import HORIZON, NEWS2_ALERT, TRAJECTORY_LEN, concat
from medstream_training.vitals_eval import evaluate_real, evaluate_set, last_values
from medstream_training.vitals_real import (
    COMPANIONS,
    real_series,
    real_sets,
    recording_windows,
    segments,
    split,
)
from worker.news2 import news2_partial
from worker.preprocess.vitals import NORM_CENTRE, NORM_SCALE

RESAMPLES = 50  # enough to exercise the intervals; the card uses 1,000


@pytest.fixture(scope="module")
def series() -> dict[str, np.ndarray]:
    return real_series()


def test_segments_cover_the_series_or_none() -> None:
    hr = np.arange(250.0)
    parts = segments(hr)
    assert len(parts) == 3 and all(p.size == TRAJECTORY_LEN for p in parts)
    assert parts[0][0] == 0 and parts[-1][-1] == 249
    assert segments(np.arange(TRAJECTORY_LEN - 1.0)) == []


def test_split_is_by_time_and_keeps_test_only_recordings_out_of_training(series) -> None:
    train, test = split(series)
    assert set(train) == {"mitbih-208", "heartpy-data3"}
    assert set(test) == {"mitbih-208", "heartpy-data3", "heartpy-data2"}
    for name in train:
        assert np.array_equal(np.concatenate([train[name], test[name]]), series[name])
        assert train[name].size > test[name].size
    assert "heartpy-data" not in real_sets(series, seed=0, companions=1)  # 15 s: too short


def test_windows_carry_the_real_heart_rate_and_rule_labels() -> None:
    hr = 60.0 + 30.0 * np.sin(np.arange(2 * TRAJECTORY_LEN) / 15.0)  # a real-like series
    data = recording_windows("test", hr, seed=0, companions=2)
    assert set(data.groups) == {0, 1} and data.patients == 4
    assert np.allclose(data.next_values[:, 0], np.concatenate([hr[e] for e in _ends(hr)]), atol=1e-4)
    seen = data.windows[:, -1, 6] == 0
    shown = data.windows[seen, -1, 0] * NORM_SCALE[0] + NORM_CENTRE[0]
    assert np.allclose(shown, np.round(data.last_observed[seen, 0]), atol=1e-3)  # integer bpm
    assert 0.0 < data.risk.mean() < 1.0


def _ends(hr: np.ndarray) -> list[np.ndarray]:
    starts = [0, hr.size - TRAJECTORY_LEN]
    ends = np.arange(30, TRAJECTORY_LEN - HORIZON, 3)
    return [np.tile(s + ends, 2) for s in starts]


def test_missing_real_readings_stay_missing() -> None:
    hr = np.full(TRAJECTORY_LEN, 72.0)
    hr[40:60] = np.nan
    data = recording_windows("gap", hr, seed=3, companions=1)
    window = data.windows[(60 - 30) // 3]  # the window ending at step 60
    assert (window[-20:, 6] == 1.0).all()
    assert np.allclose(data.next_values[:, 0], 72.0)


def test_cluster_bootstrap_resamples_whole_groups() -> None:
    values = np.repeat([0.0, 1.0, 2.0, 3.0], 50)
    groups = np.repeat([0, 1, 2, 3], 50)
    est = cluster_bootstrap(lambda idx: values[idx].mean(), groups, seed=0, n=300)
    assert est.value == pytest.approx(1.5) and 0.0 <= est.low < 1.0 and 2.0 < est.high <= 3.0
    nan_when_mixed = cluster_bootstrap(lambda idx: np.nan if np.unique(groups[idx]).size > 1 else 1.0,
                                       groups, seed=0, n=300)
    assert nan_when_mixed.low == nan_when_mixed.high == 1.0  # NaN replicates skipped


@pytest.fixture(scope="module")
def small_test(series):
    _, test = split(series)
    return real_sets(test, seed=0, companions=2)


def oracle(data):
    """A Predict that knows the answers for `data`'s windows (found by their bytes)."""
    index = {w.tobytes(): i for i, w in enumerate(data.windows)}

    def predict(windows):
        rows = np.array([index[w.tobytes()] for w in windows])
        return data.risk[rows].copy(), data.next_values[rows].copy()
    return predict


def test_oracle_and_last_value_predictors(small_test) -> None:
    data = concat(list(small_test.values()))

    def last_value(windows):
        return np.full(len(windows), 0.5), last_values(data)

    perfect = evaluate_set(oracle(data), data, seed=0, resamples=RESAMPLES)
    assert perfect["risk"]["roc_auc"].value == 1.0 and perfect["hr"]["lstm_rmse"].value == 0.0
    assert perfect["hr"]["difference"].high <= 0.0
    same = evaluate_set(last_value, data, seed=0, resamples=RESAMPLES)
    assert same["hr"]["difference"].value == 0.0
    baseline = news2_partial(last_values(data)) >= NEWS2_ALERT
    assert same["news2_now"]["recall"].value == pytest.approx(baseline[data.risk == 1].mean())


def test_card_block_names_real_synthetic_and_rule_derived(small_test) -> None:
    data = concat(list(small_test.values()))
    real = evaluate_real(oracle(data), small_test, 0, RESAMPLES)
    syn = evaluate_set(oracle(data), data, 0, RESAMPLES)
    recordings = [{"name": "heartpy-data2", "kind": "ppg", "fs": 117.0, "seconds": 128.0, "source": "heartpy",
                   "bpm": 62.7, "heartpy_bpm": 62.4}]
    text = "\n".join(vitals_section({"synthetic": syn, "real": real, "recordings": recordings, "retrain": None,
                                     "version": "v", "sha256": "0" * 64, "size_bytes": 1,
                                     "onnx_max_abs_diff": 0.0}))
    assert text.startswith(VITALS_BEGIN) and text.endswith(VITALS_END)
    for phrase in ("rule-derived", "synthetic", "must not be used for", "`heartpy-data2`",
                   "**all real**", f"{COMPANIONS} synthetic companions"):
        assert phrase in text
    card = f"# card\n\nintro\n\n{VITALS_BEGIN}\nold\n{VITALS_END}\n\n## Tabular baseline\nrest\n"
    spliced = splice_block(card, VITALS_BEGIN, VITALS_END, text)
    assert "old" not in spliced and spliced.startswith("# card\n\nintro") and spliced.endswith("rest\n")

