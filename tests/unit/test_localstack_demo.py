"""The demo's vital-sign window derived from the real MIT-BIH ECG excerpt."""

from __future__ import annotations

import numpy as np

from medstream_tools.demo.samples import heart_rate_window
from worker.contracts import CHANNELS
from worker.preprocess.vitals import WINDOW_LEN, window_to_tensor


def test_heart_rate_window_is_a_valid_model_input() -> None:
    rows = heart_rate_window()
    assert len(rows) == WINDOW_LEN and all(len(r) == len(CHANNELS) for r in rows)
    hr = np.array([r[0] for r in rows if r[0] is not None])
    assert len(hr) >= WINDOW_LEN - 5 and np.all((hr > 30) & (hr < 220))
    assert all(v is None for r in rows for v in r[1:])
    assert window_to_tensor(rows).shape == (WINDOW_LEN, 2 * len(CHANNELS))
