"""Kafka records at the worker's edges: consumed input records and dead-letter headers."""

from __future__ import annotations

from dataclasses import dataclass

from worker.errors import DeadLetterReason, PoisonMessage

MAX_ERROR_CHARS = 500


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


def check_size(value: bytes, limit: int) -> None:
    """Raise PoisonMessage(OVERSIZE) when `value` is longer than `limit` bytes."""
    if len(value) > limit:
        raise PoisonMessage(DeadLetterReason.OVERSIZE,
                            f"message of {len(value)} bytes exceeds the {limit}-byte limit")


def deadletter_headers(
    record: InputRecord, error: PoisonMessage, worker_id: str
) -> list[tuple[str, bytes]]:
    """The original headers plus error.type/error.message/source.*/worker.id (DESIGN.md)."""
    ours = {
        "error.type": error.reason.value,
        "error.message": str(error)[:MAX_ERROR_CHARS],
        "source.topic": record.topic,
        "source.partition": str(record.partition),
        "source.offset": str(record.offset),
        "worker.id": worker_id,
    }
    kept = [(k, v) for k, v in record.headers if k not in ours]
    return kept + [(k, v.encode("utf-8")) for k, v in ours.items()]
