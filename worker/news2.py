"""NEWS2 (Royal College of Physicians, 2017) from vital signs: one rule, scalar and vectorised.

The chart's bands for the parameters a vitals window carries: respiration rate, SpO2 on scale 1,
systolic blood pressure, pulse and temperature. Two parameters of the chart are not in the
window and are assumed (docs/studies.md): the patient breathes **air** (0 points; oxygen
would add 2) and is **alert** (0 points; new confusion/V/P/U would score 3). The score is
therefore a lower bound whenever the patient is on oxygen or not alert.

A value between two chart rows (e.g. RR 11.5) falls in the upper row's band: each band is
"above the previous bound, up to and including this one".
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from worker.contracts import CHANNELS, PLAUSIBLE

#: Per parameter: (inclusive upper bound, points) in increasing order, then the points above.
BANDS: dict[str, tuple[tuple[tuple[float, int], ...], int]] = {
    "rr": (((8, 3), (11, 1), (20, 0), (24, 2)), 3),
    "spo2": (((91, 3), (93, 2), (95, 1)), 0),
    "sbp": (((90, 3), (100, 2), (110, 1), (219, 0)), 3),
    "hr": (((40, 3), (50, 1), (90, 0), (110, 1), (130, 2)), 3),
    "temp": (((35.0, 3), (36.0, 1), (38.0, 0), (39.0, 1)), 2),
}
PARAMETERS: tuple[str, ...] = tuple(BANDS)
ASSUMED = {"air_or_oxygen": "air", "consciousness": "alert"}


def points(parameter: str, value: float) -> int:
    """The chart's points for one finite observation of `parameter`."""
    bands, above = BANDS[parameter]
    for bound, score in bands:
        if value <= bound:
            return score
    return above


def news2_partial(values: np.ndarray) -> np.ndarray:
    """Sum of the five parameters' points, vectorised: [..., len(CHANNELS)] -> [...].

    Every value must be finite (the training simulator's true trajectories); for observed,
    possibly missing values use `window_news2`.
    """
    total = np.zeros(values.shape[:-1], dtype=np.int64)
    for parameter, (bands, above) in BANDS.items():
        column = values[..., CHANNELS.index(parameter)]
        total = total + np.select([column <= bound for bound, _ in bands],
                                  [score for _, score in bands], above)
    return total


def band(score: int, subscores: Sequence[int]) -> str:
    """The chart's clinical risk: high >= 7, medium 5-6, low-medium for a single 3, else low."""
    if score >= 7:
        return "high"
    if score >= 5:
        return "medium"
    return "low-medium" if 3 in subscores else "low"


def window_news2(rows: Sequence[Sequence[float | None]]) -> dict[str, object]:
    """NEWS2 of a window (rows in CHANNELS order) from each parameter's latest finite value
    within the contract's plausible range (the same values the model sees unmasked).

    A parameter with no finite value in the window is listed in `missing`, and then `score`
    and `band` are None: a partial sum would look like a reassuringly low score.
    """
    subscores: dict[str, int] = {}
    for parameter in PARAMETERS:
        column = CHANNELS.index(parameter)
        low, high = PLAUSIBLE[parameter]
        latest = next((row[column] for row in reversed(rows)
                       if row[column] is not None and math.isfinite(row[column])
                       and low <= row[column] <= high), None)
        if latest is not None:
            subscores[parameter] = points(parameter, float(latest))
    missing = [p for p in PARAMETERS if p not in subscores]
    score = None if missing else sum(subscores.values())
    return {
        "score": score,
        "band": None if score is None else band(score, list(subscores.values())),
        "subscores": subscores,
        "missing": missing,
    }
