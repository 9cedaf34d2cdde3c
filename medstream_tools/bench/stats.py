"""Pure arithmetic on benchmark observations: rates, percentiles, interpolation, metric deltas."""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence

import numpy as np


def drain_rate(produced_at: Sequence[float], warmup_fraction: float = 0.1) -> dict:
    """Steady-state messages/s while draining a backlog, from output timestamps.

    The first `warmup_fraction` of outputs (start-up, group join, first batches) are left out:
    the rate is counted from the k-th output to the last one.
    """
    times = sorted(produced_at)
    if len(times) < 3:
        raise ValueError("need at least 3 outputs to measure a rate")
    k = min(int(len(times) * warmup_fraction), len(times) - 2)
    span = times[-1] - times[k]
    if span <= 0:
        raise ValueError("all outputs share one timestamp; use more messages")
    return {"msg_per_s": (len(times) - 1 - k) / span, "start": times[k], "end": times[-1],
            "messages": len(times) - 1 - k}


def percentiles(samples: Sequence[float], points: Sequence[int] = (50, 95, 99)) -> dict[str, float]:
    """{"p50": .., "p95": .., "p99": .., "max": ..} of the samples (same unit as the input)."""
    if not samples:
        raise ValueError("no samples")
    arr = np.asarray(samples, dtype=float)
    out = {f"p{p}": float(np.percentile(arr, p)) for p in points}
    out["max"] = float(arr.max())
    return out


def latencies_ms(intended: Mapping[str, float], arrived: Mapping[str, float]) -> list[float]:
    """Milliseconds from each event's intended send time to its arrival (ids without one skipped)."""
    return [(arrived[eid] - t0) * 1e3 for eid, t0 in intended.items() if eid in arrived]


def interpolate(series: Sequence[tuple[float, float]], at: float) -> float:
    """Linear interpolation of a time-sorted [(t, value)] series at time `at` (clamped)."""
    if not series:
        raise ValueError("empty series")
    times = [t for t, _ in series]
    i = bisect.bisect_left(times, at)
    if i == 0:
        return series[0][1]
    if i >= len(series):
        return series[-1][1]
    (t0, v0), (t1, v1) = series[i - 1], series[i]
    return v0 if t1 == t0 else v0 + (v1 - v0) * (at - t0) / (t1 - t0)


def histogram_mean(before: Mapping[str, float], after: Mapping[str, float], name: str,
                   labels: str) -> float | None:
    """Mean of a Prometheus histogram between two scrapes (None when nothing was observed).

    Scrapes map `'<name>_sum{<labels>}'` / `'<name>_count{<labels>}'` to values.
    """
    key_sum, key_count = f"{name}_sum{{{labels}}}", f"{name}_count{{{labels}}}"
    count = after.get(key_count, 0.0) - before.get(key_count, 0.0)
    if count <= 0:
        return None
    return (after.get(key_sum, 0.0) - before.get(key_sum, 0.0)) / count
