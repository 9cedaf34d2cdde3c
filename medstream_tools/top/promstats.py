"""Pure helpers over Prometheus text exposition: parse a scrape, diff two, aggregate, quantiles.

Used by `medstream top` and the tests; no I/O here.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

Labels = tuple[tuple[str, str], ...]
Key = tuple[str, Labels]


@dataclass(frozen=True)
class Snapshot:
    """One scrape: sample values keyed by (name, sorted labels), or the reason it failed.

    Counter samples are keyed by the family name without `_total` (Triton exposes counters
    without the suffix, the worker with it); histogram samples keep `_bucket/_sum/_count`.
    """

    at: float
    samples: Mapping[Key, float] = field(default_factory=dict)
    error: str | None = None


def parse_metrics(text: str, at: float) -> Snapshot:
    """Parse Prometheus text exposition into a Snapshot taken at monotonic time `at`."""
    samples: dict[Key, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name.endswith("_created"):
                continue
            name = family.name if family.type == "counter" else s.name
            samples[(name, tuple(sorted(s.labels.items())))] = float(s.value)
    return Snapshot(at=at, samples=samples)


def increase(prev: Snapshot | None, cur: Snapshot) -> dict[Key, float]:
    """Per-series increase since `prev` (counter resets count from zero); totals when no prev."""
    if prev is None or prev.error is not None:
        return dict(cur.samples)
    out = {}
    for key, value in cur.samples.items():
        before = prev.samples.get(key, 0.0)
        out[key] = value - before if value >= before else value
    return out


def sum_by(samples: Mapping[Key, float], name: str, *labels: str) -> dict[str, float]:
    """Sum the series of `name` grouped by `labels`, values joined by "/" ("" without labels)."""
    out: dict[str, float] = defaultdict(float)
    for (n, series), value in samples.items():
        if n == name:
            d = dict(series)
            out["/".join(d.get(label, "") for label in labels)] += value
    return dict(out)


def buckets_by(
    samples: Mapping[Key, float], name: str, label: str
) -> dict[str, list[tuple[float, float]]]:
    """Cumulative `(le, count)` pairs of histogram `name` (without suffix), grouped by `label`."""
    acc: dict[str, dict[float, float]] = defaultdict(lambda: defaultdict(float))
    for (n, labels), value in samples.items():
        if n == name + "_bucket":
            d = dict(labels)
            acc[d.get(label, "")][float(d["le"])] += value
    return {group: sorted(b.items()) for group, b in acc.items()}


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """Prometheus' histogram_quantile over sorted cumulative buckets; None without observations."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    total = buckets[-1][1]
    rank = q * total
    lower_le, lower_count = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if math.isinf(le):
                return lower_le
            if count == lower_count:
                return le
            return lower_le + (le - lower_le) * (rank - lower_count) / (count - lower_count)
        lower_le, lower_count = le, count
    return lower_le
