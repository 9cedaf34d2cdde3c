"""The lane on the wire (docs/lanes.md): which lane's worker served an input.

Every outcome names it: predictions and skips in a `lane` field, dead letters in a
`worker.lane` header beside `worker.id` (their value is the original input, left unchanged).
A worker serves one lane and consumes only that lane's topics, so the lane that served an
input is the lane it was published on. Added to the /v1 schemas: readers accept records
without it (from workers before the field existed) as lane unknown (None).
"""

from __future__ import annotations

from typing import Any

from worker.errors import DeadLetterReason, PoisonMessage

STAT, ROUTINE = "stat", "routine"
LANES = (STAT, ROUTINE)
LANE_HEADER = "worker.lane"  # dead letters: the lane of the worker that wrote it


def optional_lane(obj: dict[str, Any]) -> str | None:
    """The record's `lane` field: None when absent or null, else one of LANES."""
    lane = obj.get("lane")
    if lane is not None and lane not in LANES:
        raise PoisonMessage(DeadLetterReason.SCHEMA, f"field 'lane' must be one of {list(LANES)}")
    return lane


def header_lane(headers: dict[str, bytes]) -> str | None:
    """The lane a dead letter's `worker.lane` header names; None when absent or unknown."""
    lane = headers.get(LANE_HEADER, b"").decode("utf-8", "replace")
    return lane if lane in LANES else None
