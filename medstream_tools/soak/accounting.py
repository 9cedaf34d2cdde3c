"""The end-of-scenario accounting: every input in predictions ∪ deadletter, duplicates benign.

A duplicate is a second record under the same key. It is benign when it is a re-delivery: a
prediction with the same model, version and outputs (to float tolerance: a re-run may land in
a different batch), or a dead letter with the same value and error type. Counts are printed
and appended to `<state dir>/chaos-report.jsonl` (docs/reliability.md quotes them).
"""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer

REL_TOL = 1e-4


def read_topic(bootstrap: str, topic: str, idle_ms: int = 2500,
               security: dict[str, Any] | None = None) -> list[Any]:
    """Every record of `topic` (all partitions), read until the consumer idles for `idle_ms`."""
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, group_id=None, consumer_timeout_ms=idle_ms,
                             max_partition_fetch_bytes=4 * 1024 * 1024, **(security or {}))
    try:
        return list(consumer)
    finally:
        consumer.close()


@dataclass(frozen=True)
class Counts:
    """What one scenario checked."""

    scenario: str
    inputs: int
    predictions: int  # distinct keys
    dead_letters: int  # distinct keys
    duplicates: int  # records beyond the first per key, both topics
    missing: int
    conflicting: int  # duplicates whose content differs
    extra: dict[str, Any]

    def line(self) -> str:
        extra = " ".join(f"{k}={v}" for k, v in self.extra.items())
        return (f"[chaos] {self.scenario}: inputs={self.inputs} predictions={self.predictions} "
                f"dead_letters={self.dead_letters} duplicates={self.duplicates} "
                f"missing={self.missing} conflicting={self.conflicting} {extra}").rstrip()


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    if isinstance(a, float | int) and isinstance(b, float | int):
        return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=1e-6)
    return a == b


def _same_prediction(a: bytes, b: bytes) -> bool:
    x, y = json.loads(a), json.loads(b)
    fields = ("schema", "event_id", "kind", "model", "model_version", "reason", "rule")  # or skip
    return all(x.get(f) == y.get(f) for f in fields) and _close(x.get("outputs"), y.get("outputs"))


def _same_dead_letter(a: Any, b: Any) -> bool:
    return a.value == b.value and dict(a.headers).get("error.type") == dict(b.headers).get("error.type")


def _group(records: list[Any]) -> dict[str, list[Any]]:
    by_key: dict[str, list[Any]] = defaultdict(list)
    for r in records:
        by_key[(r.key or b"").decode("utf-8", "replace")].append(r)
    return by_key


def unanswered(inputs: dict[str, str], predictions: list[Any], dead_letters: list[Any]) -> set[str]:
    """Input ids with neither a prediction nor a dead letter."""
    answered = {(r.key or b"").decode("utf-8", "replace") for r in predictions + dead_letters}
    return set(inputs) - answered


def account(scenario: str, inputs: dict[str, str], predictions: list[Any],
            dead_letters: list[Any], **extra: Any) -> Counts:
    """Counts for `inputs` ({event id: kind}) against the records of both output topics."""
    preds, dead = _group(predictions), _group(dead_letters)
    duplicates = sum(len(v) - 1 for v in preds.values()) + sum(len(v) - 1 for v in dead.values())
    conflicting = sum(1 for v in preds.values() for r in v[1:] if not _same_prediction(v[0].value, r.value))
    conflicting += sum(1 for v in dead.values() for r in v[1:] if not _same_dead_letter(v[0], r))
    missing = unanswered(inputs, predictions, dead_letters)
    return Counts(scenario, len(inputs), sum(1 for e in inputs if e in preds),
                  sum(1 for e in inputs if e in dead), duplicates, len(missing), conflicting, extra)


def settle(scenario: str, bootstrap: str, topics: tuple[str, str], inputs: dict[str, str],
           timeout_s: float = 150.0, security: dict[str, Any] | None = None,
           **extra: Any) -> Counts:
    """Re-read both output topics until every input is accounted for (or the time is up)."""
    deadline = time.monotonic() + timeout_s
    while True:
        counts = account(scenario, inputs, read_topic(bootstrap, topics[0], security=security),
                         read_topic(bootstrap, topics[1], security=security), **extra)
        if counts.missing == 0 or time.monotonic() > deadline:
            return counts
        time.sleep(2)


def report(counts: Counts, state_dir: Path) -> None:
    """Print the counts and append them to the scenario report file."""
    print(counts.line(), flush=True)
    with (state_dir / "chaos-report.jsonl").open("a") as out:
        out.write(json.dumps({"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                              **asdict(counts)}) + "\n")


def assert_no_loss(counts: Counts) -> None:
    """Every input answered, every duplicate a faithful re-delivery, and something was tested."""
    assert counts.inputs > 0, "the load produced nothing"
    assert counts.missing == 0, f"{counts.missing} inputs have neither prediction nor dead letter"
    assert counts.conflicting == 0, f"{counts.conflicting} duplicates differ from the first copy"
    assert counts.predictions > 0 and counts.dead_letters > 0

