"""NEWS2 (RCP 2017 chart): band edges, hand-computed cases, missing values, both implementations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from worker.contracts import CHANNELS
from worker.news2 import news2_partial, points, window_news2

# (parameter, value, points) at every edge of the chart's rows
EDGES = [
    ("rr", 8, 3), ("rr", 9, 1), ("rr", 11, 1), ("rr", 12, 0), ("rr", 20, 0), ("rr", 21, 2),
    ("rr", 24, 2), ("rr", 25, 3),
    ("spo2", 91, 3), ("spo2", 92, 2), ("spo2", 93, 2), ("spo2", 94, 1), ("spo2", 95, 1),
    ("spo2", 96, 0), ("spo2", 100, 0),
    ("sbp", 90, 3), ("sbp", 91, 2), ("sbp", 100, 2), ("sbp", 101, 1), ("sbp", 110, 1),
    ("sbp", 111, 0), ("sbp", 219, 0), ("sbp", 220, 3),
    ("hr", 40, 3), ("hr", 41, 1), ("hr", 50, 1), ("hr", 51, 0), ("hr", 90, 0), ("hr", 91, 1),
    ("hr", 110, 1), ("hr", 111, 2), ("hr", 130, 2), ("hr", 131, 3),
    ("temp", 35.0, 3), ("temp", 35.1, 1), ("temp", 36.0, 1), ("temp", 36.1, 0),
    ("temp", 38.0, 0), ("temp", 38.1, 1), ("temp", 39.0, 1), ("temp", 39.1, 2),
]

# (hr, spo2, rr, sbp, temp) -> score, band: summed by hand from the chart (air, alert assumed)
CASES = [
    ((70, 97, 16, 120, 37.0), 0, "low"),
    ((95, 96, 21, 120, 38.2), 1 + 0 + 2 + 0 + 1, "low"),
    ((35, 97, 16, 120, 37.0), 3, "low-medium"),  # a single parameter scoring 3
    ((95, 94, 21, 108, 37.0), 1 + 1 + 2 + 1 + 0, "medium"),
    ((115, 95, 22, 105, 38.5), 2 + 1 + 2 + 1 + 1, "high"),
    ((40, 91, 8, 90, 35.0), 15, "high"),
    ((140, 85, 30, 230, 40.0), 3 + 3 + 3 + 3 + 2, "high"),
]


def row(hr: float | None, spo2: float | None, rr: float | None, sbp: float | None,
        temp: float | None, dbp: float | None = 70.0) -> list[float | None]:
    values = {"hr": hr, "spo2": spo2, "rr": rr, "sbp": sbp, "dbp": dbp, "temp": temp}
    return [values[c] for c in CHANNELS]


@pytest.mark.parametrize(("parameter", "value", "expected"), EDGES)
def test_chart_edges(parameter: str, value: float, expected: int) -> None:
    assert points(parameter, value) == expected


@pytest.mark.parametrize(("vitals", "score", "band"), CASES)
def test_hand_computed_cases(vitals: tuple[float, ...], score: int, band: str) -> None:
    result = window_news2([row(*vitals)])
    assert (result["score"], result["band"], result["missing"]) == (score, band, [])
    assert int(news2_partial(np.array(row(*vitals), dtype=float))) == score


def test_latest_finite_value_of_each_parameter_counts() -> None:
    rows = [row(70, 97, 30, 120, 37.0), row(None, math.nan, 16, None, None)]
    result = window_news2(rows)
    assert result["subscores"] == {"rr": 0, "spo2": 0, "sbp": 0, "hr": 0, "temp": 0}
    assert result["score"] == 0


def test_a_missing_parameter_gives_no_score_rather_than_a_low_one() -> None:
    result = window_news2([row(140, 85, 30, 230, None)])
    assert result["score"] is None and result["band"] is None
    assert result["missing"] == ["temp"]
    assert result["subscores"] == {"rr": 3, "spo2": 3, "sbp": 3, "hr": 3}


def test_vectorised_rule_is_the_scalar_rule() -> None:
    rng = np.random.default_rng(7)
    values = rng.uniform([20, 80, 0, 60, 40, 33], [180, 100, 40, 240, 120, 41],
                         size=(2000, len(CHANNELS))).round(1)
    by_hand = [sum(points(p, float(v[CHANNELS.index(p)])) for p in ("rr", "spo2", "sbp", "hr", "temp"))
               for v in values]
    assert news2_partial(values).tolist() == by_hand


def test_training_labels_use_the_same_rule() -> None:
    from medstream_training import vitals_data

    assert vitals_data.news2_partial is news2_partial
