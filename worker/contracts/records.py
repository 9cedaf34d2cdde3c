"""Kafka records at the worker's edges: consumed input records and the dead letters built from them.

A dead letter carries the original value unchanged (`full_deadletter`). One too large for the
producer (or refused by the broker) is replaced by a bounded one (`bounded_deadletter`): the
same error/source headers, the original key and headers when small, and as value a
`medstream.deadletter-stub/v1` JSON object naming the original by size and sha256.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from worker.contracts.fields import dump, json_object
from worker.contracts.lane import LANE_HEADER
from worker.errors import DeadLetterReason, PoisonMessage

MAX_ERROR_CHARS = 500
DEADLETTER_STUB_SCHEMA = "medstream.deadletter-stub/v1"
STUB_MAX_KEY_BYTES = 1024  # a longer original key is left out of a bounded dead letter
STUB_MAX_HEADER_BYTES = 16 * 1024  # so are original headers larger than this in all
Headers = list[tuple[str, bytes]]


@dataclass(frozen=True)
class InputRecord:
    """One consumed Kafka record, as the pipeline sees it (raw bytes, nothing decoded)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp_s: float  # Kafka record timestamp, seconds since the epoch
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True)
class OutputRecord:
    """One record to produce: key, value, headers."""

    key: bytes | None
    value: bytes
    headers: Headers | None = None

    @property
    def size(self) -> int:
        """Bytes of key, value and headers (the producer adds a bounded record overhead)."""
        return len(self.key or b"") + len(self.value) + _headers_size(self.headers or [])


def _headers_size(headers: Any) -> int:
    return sum(len(k.encode("utf-8", "backslashreplace")) + len(v or b"") for k, v in headers)


def check_size(value: bytes, limit: int) -> None:
    """Raise PoisonMessage(OVERSIZE) when `value` is longer than `limit` bytes."""
    if len(value) > limit:
        raise PoisonMessage(DeadLetterReason.OVERSIZE,
                            f"message of {len(value)} bytes exceeds the {limit}-byte limit")


def deadletter_headers(
    record: InputRecord, error: PoisonMessage, worker_id: str, lane: str | None = None
) -> list[tuple[str, bytes]]:
    """The original headers plus error.type/error.message/source.*/worker.id (DESIGN.md) and
    worker.lane when the lane is known (docs/lanes.md)."""
    ours = _ours(record, error, worker_id, lane)
    return [(k, v) for k, v in record.headers if k not in ours] + _encoded(ours)


def _ours(record: InputRecord, error: PoisonMessage, worker_id: str,
          lane: str | None) -> dict[str, str]:
    return {
        "error.type": error.reason.value,
        "error.message": str(error)[:MAX_ERROR_CHARS],
        "source.topic": record.topic,
        "source.partition": str(record.partition),
        "source.offset": str(record.offset),
        "worker.id": worker_id,
        **({LANE_HEADER: lane} if lane is not None else {}),
    }


def _encoded(headers: dict[str, str]) -> Headers:
    # backslashreplace: a header value must never fail to encode (messages quote field names)
    return [(k, v.encode("utf-8", "backslashreplace")) for k, v in headers.items()]


def full_deadletter(record: InputRecord, error: PoisonMessage, worker_id: str,
                    lane: str | None = None) -> OutputRecord:
    """The dead letter of DESIGN.md: original key, original value unchanged, error headers."""
    return OutputRecord(record.key, record.value,
                        deadletter_headers(record, error, worker_id, lane))


def _digest(data: bytes) -> dict[str, Any]:
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def bounded_deadletter(record: InputRecord, error: PoisonMessage, worker_id: str,
                       lane: str | None = None) -> OutputRecord:
    """A dead letter of a few KiB whatever the original's size (see the module docstring)."""
    key = record.key if record.key is None or len(record.key) <= STUB_MAX_KEY_BYTES else None
    kept = list(record.headers) if _headers_size(record.headers) <= STUB_MAX_HEADER_BYTES else []
    ours = _ours(record, error, worker_id, lane)
    value = _digest(record.value)
    stub = dump({
        "schema": DEADLETTER_STUB_SCHEMA,
        "reason": error.reason.value,
        "source": {"topic": record.topic, "partition": record.partition, "offset": record.offset},
        "value": value,
        "key": None if record.key is None else _digest(record.key),
        "key_kept": key is not None or record.key is None,
        "headers_dropped": len(record.headers) - len(kept),
    })
    extra = {"original.value.bytes": str(value["bytes"]), "original.value.sha256": value["sha256"]}
    return OutputRecord(key, stub, [(k, v) for k, v in kept if k not in ours]
                        + _encoded(ours | extra))


def decode_deadletter_stub(value: bytes) -> dict[str, Any]:
    """The fields of a bounded dead letter's value (for triage tools and tests)."""
    obj = json_object(value)
    if obj.get("schema") != DEADLETTER_STUB_SCHEMA:
        raise PoisonMessage(DeadLetterReason.SCHEMA, f"field 'schema' must be {DEADLETTER_STUB_SCHEMA!r}")
    return obj

