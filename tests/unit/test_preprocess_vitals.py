"""worker.preprocess.vitals: rows -> float32 [60, 12] with masks, and its poison cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from worker.contracts import CHANNELS
from worker.errors import PoisonMessage
from worker.preprocess.vitals import (
    NORM_CENTRE,
    NORM_CLIP,
    WINDOW_LEN,
    denormalise,
    window_to_tensor,
)

NORMAL = [80.0, 96.0, 16.0, 120.0, 75.0, 37.0]


def test_channel_contract() -> None:
    assert CHANNELS == ("hr", "spo2", "rr", "sbp", "dbp", "temp") and WINDOW_LEN == 60


def test_full_window_normalised_and_unmasked() -> None:
    out = window_to_tensor([[90.0, 92.0, 21.0, 100.0, 60.0, 38.4]] * 60)
    assert out.shape == (60, 12) and out.dtype == np.float32
    assert np.allclose(out[:, :6], [0.5, -1.0, 1.0, -1.0, -1.25, 2.0])
    assert not out[:, 6:].any()
    assert np.allclose(denormalise(out[0, :6]), [90.0, 92.0, 21.0, 100.0, 60.0, 38.4], atol=1e-4)


def test_short_window_left_padded_as_missing() -> None:
    out = window_to_tensor([NORMAL] * 5)
    assert np.array_equal(out[:55, 6:], np.ones((55, 6)))
    assert np.array_equal(out[:55, :6], np.zeros((55, 6)))
    assert not out[55:, 6:].any()


def test_long_window_keeps_last_rows() -> None:
    rows = [[float(i)] + NORMAL[1:] for i in range(100)]
    out = window_to_tensor(rows)
    assert denormalise(out[0, :6])[0] == pytest.approx(40.0)
    assert denormalise(out[-1, :6])[0] == pytest.approx(99.0)


def test_none_and_nan_are_missing() -> None:
    rows = [NORMAL] * 10 + [[None, math.nan, 16.0, 120.0, 75.0, None]]
    out = window_to_tensor(rows)
    assert list(out[-1, 6:]) == [1, 1, 0, 0, 0, 1]
    assert list(out[-1, :3]) == [0, 0, 0]


def test_extreme_values_are_clipped() -> None:
    out = window_to_tensor([[1e9, 96.0, 16.0, 120.0, 75.0, 37.0]])
    assert out[-1, 0] == NORM_CLIP


@pytest.mark.parametrize("values", [
    [], [[80.0] * 5], [[80.0] * 7], "abc", [[80, 96, 16, 120, 75, "37"]], [[True] * 6], [None],
])
def test_wrong_shape_or_type_is_poison(values: object) -> None:
    with pytest.raises(PoisonMessage) as info:
        window_to_tensor(values)  # type: ignore[arg-type]
    assert info.value.reason == "shape"


def test_all_missing_is_poison() -> None:
    with pytest.raises(PoisonMessage) as info:
        window_to_tensor([[None] * 6] * 30)
    assert info.value.reason == "all_missing"


def test_nan_storm_is_poison() -> None:
    rows = [[math.nan] * 6] * 40 + [NORMAL] * 20
    with pytest.raises(PoisonMessage) as info:
        window_to_tensor(rows)
    assert info.value.reason == "non_finite"


def test_some_infinities_are_missing() -> None:
    out = window_to_tensor([[math.inf] + NORMAL[1:]] + [NORMAL] * 59)
    assert out[0, 6] == 1.0 and out[0, 0] == 0.0


def test_centre_values_map_to_zero() -> None:
    assert np.allclose(window_to_tensor([list(NORM_CENTRE)])[-1, :6], 0.0)
