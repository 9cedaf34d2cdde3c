"""The vectorised vitals path gives what the per-cell path gives (issue 8)."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from worker.errors import PoisonMessage
from worker.preprocess.vitals import _as_array, _as_array_fast, window_to_tensor

CELLS = [None, 0, 72, 72.5, math.nan, math.inf, -math.inf]


def per_cell(values: list[list[object]]) -> tuple[np.ndarray, int]:
    """The reference: float() per cell, counting explicit NaN/inf numbers."""
    raw = np.array([[math.nan if v is None else float(v) for v in row] for row in values])
    return raw, sum(1 for row in values for v in row if v is not None and not math.isfinite(v))


@pytest.mark.parametrize("seed", range(20))
def test_fast_path_matches_per_cell_reference(seed: int) -> None:
    rng = random.Random(seed)
    values = [[rng.choice(CELLS) for _ in range(6)] for _ in range(rng.randint(1, 90))]
    fast = _as_array_fast(values)
    assert fast is not None
    expected, non_finite = per_cell(values)
    np.testing.assert_array_equal(fast[0], expected)
    assert fast[1] == non_finite


@pytest.mark.parametrize("values", [
    [[1, 2, 3, 4, 5, True]],  # bool is not a number here
    [[1, 2, 3, 4, 5, "6"]],  # numeric strings are refused, not parsed
    [[1, 2, 3, 4, 5]],  # short row
    [[1, 2, 3, 4, 5, [6]]],  # nested list
    [(1, 2, 3, 4, 5, 6)],  # a tuple row: valid, but not the JSON shape
    [[1, 2, 3, 4, 5, 10**400]],  # an int too large for a float
])
def test_anything_unusual_takes_the_per_cell_path(values: list) -> None:
    assert _as_array_fast(values) is None


def test_unusual_values_are_still_refused_by_the_per_cell_path() -> None:
    with pytest.raises(PoisonMessage) as info:
        window_to_tensor([[1, 2, 3, 4, 5, "6"]])
    assert info.value.reason == "shape"
    raw, non_finite = _as_array([(1, 2, 3, 4, 5, math.nan)])
    assert raw.shape == (1, 6) and non_finite == 1
