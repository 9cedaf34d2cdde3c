"""Vital-sign window preprocessing shared by training and the worker: rows -> float32 [60, 12].

Columns 0-5 are the channels normalised with fixed physiological constants (missing -> 0);
columns 6-11 are missing-masks (1.0 = the value was missing). The worker first screens the
window (`screened_window`): values outside `worker.contracts.PLAUSIBLE` become missing and are
counted, and a channel with mostly implausible values makes the window poison. Pure numpy.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

from worker.contracts.vitals import CHANNELS, PLAUSIBLE
from worker.errors import DeadLetterReason, PoisonMessage

WINDOW_LEN = 60
"""Time steps per model input; longer windows keep their last 60 rows."""
NORM_CENTRE = np.array([80.0, 96.0, 16.0, 120.0, 75.0, 37.0])
"""Per-channel centre subtracted before scaling (typical adult values)."""
NORM_SCALE = np.array([20.0, 4.0, 5.0, 20.0, 12.0, 0.7])
"""Per-channel scale: (value - centre) / scale."""
NORM_CLIP = 10.0
"""Normalised values are clipped to +/- this, so one absurd reading cannot saturate the LSTM."""
MAX_NON_FINITE_FRACTION = 0.5
"""More NaN/inf numbers than this fraction of the cells is a "non-finite storm" (poison)."""
MAX_IMPLAUSIBLE_FRACTION = 0.5
"""A channel with more implausible values than this fraction of its present values makes the
window poison (IMPLAUSIBLE): a feed that is mostly out of range is a unit, sign or mapping
error upstream, not an artefact to mask."""
LOW = np.array([PLAUSIBLE[c][0] for c in CHANNELS])
HIGH = np.array([PLAUSIBLE[c][1] for c in CHANNELS])
SBP, DBP = CHANNELS.index("sbp"), CHANNELS.index("dbp")


def _cell(value: object) -> float:
    """One cell as a float; None -> NaN. Raises PoisonMessage for non-numeric values."""
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise PoisonMessage(DeadLetterReason.SHAPE, f"vital-sign values must be numbers or null, got {type(value).__name__}")
    return float(value)


_PLAIN_CELLS = frozenset({int, float, type(None)})  # what JSON numbers and null decode to


def _as_array_fast(values: object) -> tuple[np.ndarray, int] | None:
    """`_as_array` for the common case (lists of 6 JSON numbers/nulls), vectorised; else None.

    None means "not the plain case": the per-cell path then validates and names the problem.
    """
    if type(values) is not list or not values:
        return None
    if set(map(type, values)) != {list} or set(map(len, values)) != {len(CHANNELS)}:
        return None
    if not set(map(type, itertools.chain.from_iterable(values))) <= _PLAIN_CELLS:
        return None  # bool, str, nested lists, ...: the slow path raises
    try:
        raw = np.array(values, dtype=np.float64)  # None -> NaN
    except (OverflowError, ValueError):
        return None
    nulls = sum(row.count(None) for row in values)
    return raw, int(np.count_nonzero(~np.isfinite(raw))) - nulls


def _as_array(values: Sequence[Sequence[float | None]]) -> tuple[np.ndarray, int]:
    """Rows as a float [T, 6] array (None -> NaN) and the count of explicit NaN/inf numbers."""
    fast = _as_array_fast(values)
    if fast is not None:
        return fast
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) == 0:
        raise PoisonMessage(DeadLetterReason.SHAPE, "values must be a non-empty list of rows")
    non_finite = 0
    rows = []
    for row in values:
        if isinstance(row, (str, bytes)) or not isinstance(row, Sequence) or len(row) != len(CHANNELS):
            raise PoisonMessage(DeadLetterReason.SHAPE, f"every row must have {len(CHANNELS)} values {CHANNELS}")
        cells = [_cell(v) for v in row]
        non_finite += sum(1 for raw, v in zip(row, cells) if raw is not None and not math.isfinite(v))
        rows.append(cells)
    return np.array(rows, dtype=np.float64), non_finite


def _recent(values: Sequence[Sequence[float | None]]) -> np.ndarray:
    """The last 60 rows as float [T, 6] (NaN = missing), after the shape/NaN/missing checks."""
    raw, non_finite = _as_array(values)
    if non_finite > MAX_NON_FINITE_FRACTION * raw.size:
        raise PoisonMessage(DeadLetterReason.NON_FINITE, f"{non_finite} of {raw.size} values are NaN/inf")
    raw = raw[-WINDOW_LEN:]
    if not np.isfinite(raw).any():
        raise PoisonMessage(DeadLetterReason.ALL_MISSING, "every vital-sign value in the window is missing")
    return raw


def window_to_tensor(values: Sequence[Sequence[float | None]]) -> np.ndarray:
    """Turn T rows x 6 channels into the LSTM input, float32 [60, 12].

    Keeps the last 60 rows and left-pads shorter windows with missing rows. None, NaN and
    +/-inf are missing. Raises PoisonMessage on a wrong shape or non-numeric value, when
    every value is missing, or when more than half of the numbers are NaN/inf.
    """
    return _tensor(_recent(values))


def implausible_mask(raw: np.ndarray) -> np.ndarray:
    """True where a present value lies outside its channel's PLAUSIBLE range, and for sbp and
    dbp of rows whose (otherwise plausible) dbp is not below their sbp."""
    outside = np.isfinite(raw) & ((raw < LOW) | (raw > HIGH))
    crossed = (raw[:, DBP] >= raw[:, SBP]) & ~outside[:, SBP] & ~outside[:, DBP]  # NaN: False
    crossed &= np.isfinite(raw[:, SBP]) & np.isfinite(raw[:, DBP])
    outside[:, SBP] |= crossed
    outside[:, DBP] |= crossed
    return outside


def screened_window(values: Sequence[Sequence[float | None]]
                    ) -> tuple[np.ndarray, dict[str, int], dict[str, int]]:
    """`window_to_tensor` after masking implausible values; also, per channel, the count of
    masked values and of missing values (after masking) in the rows the model sees.

    Raises PoisonMessage(IMPLAUSIBLE) when a channel has more than MAX_IMPLAUSIBLE_FRACTION of
    its present values implausible (so also when nothing plausible is left).
    """
    raw = _recent(values)
    outside = implausible_mask(raw)
    masked_n, present_n = outside.sum(axis=0), np.isfinite(raw).sum(axis=0)
    bad = masked_n > MAX_IMPLAUSIBLE_FRACTION * present_n
    if bad.any():
        detail = ", ".join(f"{c} {m} of {p}" for c, m, p, b in zip(CHANNELS, masked_n, present_n, bad) if b)
        raise PoisonMessage(DeadLetterReason.IMPLAUSIBLE, f"values outside the plausible range: {detail}")
    masked = np.where(outside, np.nan, raw)
    missing_n = (~np.isfinite(masked)).sum(axis=0)
    return (_tensor(masked), dict(zip(CHANNELS, map(int, masked_n))),
            dict(zip(CHANNELS, map(int, missing_n))))


def _tensor(raw: np.ndarray) -> np.ndarray:
    """Float [T <= 60, 6] with NaN for missing -> the normalised, masked LSTM input."""
    missing = ~np.isfinite(raw)
    normalised = np.clip((np.where(missing, NORM_CENTRE, raw) - NORM_CENTRE) / NORM_SCALE,
                         -NORM_CLIP, NORM_CLIP)
    out = np.zeros((WINDOW_LEN, 2 * len(CHANNELS)), dtype=np.float32)
    out[:, len(CHANNELS):] = 1.0  # padding rows are missing
    start = WINDOW_LEN - raw.shape[0]
    out[start:, : len(CHANNELS)] = normalised
    out[start:, len(CHANNELS):] = missing
    return out


def denormalise(normalised: np.ndarray) -> np.ndarray:
    """Inverse of the channel normalisation: [..., 6] normalised -> physical units."""
    return np.asarray(normalised) * NORM_SCALE + NORM_CENTRE
