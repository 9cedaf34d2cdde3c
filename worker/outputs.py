"""The outputs of one served batch, one per input record, ready to produce.

Per-record containment at the edge of the batch loop: a prediction whose key or value cannot
be encoded becomes its input's dead letter (`internal_error`); a dead letter larger than the
producer accepts is sent in its bounded form (`worker.contracts.bounded_deadletter`), and one
that the producer or broker refuses as too large is sent again in that form (`degrade`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace

from aiokafka.errors import MessageSizeTooLargeError, RecordTooLargeError

from worker.contracts import (
    InputRecord,
    OutputRecord,
    Prediction,
    Skip,
    bounded_deadletter,
    encode_prediction,
    encode_skip,
    full_deadletter,
)
from worker.errors import DeadLetterReason, PoisonMessage, unexpected
from worker.identity import EventIdLedger

RECORD_HEADROOM_BYTES = 16 * 1024
"""Kept free of the producer's max request size for the record batch header, the record's own
overhead and the varints of its headers (aiokafka's estimate adds well under 1 KiB)."""


@dataclass
class Outgoing:
    """One output: a prediction, a skip (both to the predictions topic), or a dead letter
    (`error` set) with its bounded fallback."""

    record: InputRecord
    message: OutputRecord
    prediction: Prediction | None = None
    skip: Skip | None = None
    error: PoisonMessage | None = None
    fallback: Callable[[], OutputRecord] | None = None  # the bounded form, built on demand
    bounded: bool = False

    def degrade(self, exc: BaseException) -> bool:
        """Switch to the bounded form when `exc` is a too-large refusal and there is one."""
        if self.fallback is None or not too_large(exc):
            return False
        self.message, self.fallback, self.bounded = self.fallback(), None, True
        return True


def too_large(exc: BaseException) -> bool:
    """True when `exc`, or an exception it was raised from, says the record is too large
    (aiokafka's producer check, or the broker's MESSAGE_TOO_LARGE answer)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, (MessageSizeTooLargeError, RecordTooLargeError)):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def deadletter_output(record: InputRecord, error: PoisonMessage, worker_id: str,
                      max_request_bytes: int, lane: str | None = None) -> Outgoing:
    """The dead letter of `record`: full when it fits the producer, else bounded."""
    bounded = functools.partial(bounded_deadletter, record, error, worker_id, lane)
    full = full_deadletter(record, error, worker_id, lane)
    if full.size > max_request_bytes - RECORD_HEADROOM_BYTES:
        return Outgoing(record, bounded(), error=error, bounded=True)
    return Outgoing(record, full, error=error, fallback=bounded)


def batch_outputs(predictions: list[tuple[InputRecord, Prediction]],
                  dead_letters: list[tuple[InputRecord, PoisonMessage]],
                  skips: list[tuple[InputRecord, Skip]] | None = None, *, kind: str,
                  worker_id: str, max_request_bytes: int, ledger: EventIdLedger,
                  lane: str | None = None) -> list[Outgoing]:
    """One output per record: predictions keyed by their event id (flagged when the id was
    re-used with other content), skips keyed the same way, then dead letters; each names
    `lane`, the lane of the worker that served it (docs/lanes.md). An output whose key or
    value cannot be encoded is its input's dead letter (contracts refuse such ids; this is the
    last resort)."""
    outs, dead = [], list(dead_letters)
    for record, pred in predictions:
        pred = replace(pred, lane=lane)
        if pred.input_digest is not None and ledger.conflicts(pred.event_id, pred.input_digest):
            pred = replace(pred, event_id_conflict=True)
        try:
            message = OutputRecord(pred.event_id.encode("utf-8"), encode_prediction(pred))
        except Exception as exc:  # noqa: BLE001 - an encoding bug on one input: its dead letter
            dead.append((record, unexpected(exc, DeadLetterReason.INTERNAL_ERROR,
                                            f"encoding a {kind} prediction")))
            continue
        outs.append(Outgoing(record, message, prediction=pred))
    for record, skip in skips or ():
        skip = replace(skip, lane=lane)
        try:
            message = OutputRecord(skip.event_id.encode("utf-8"), encode_skip(skip))
        except Exception as exc:  # noqa: BLE001 - an encoding bug on one input: its dead letter
            dead.append((record, unexpected(exc, DeadLetterReason.INTERNAL_ERROR,
                                            f"encoding a {kind} skip")))
            continue
        outs.append(Outgoing(record, message, skip=skip))
    return outs + [deadletter_output(r, e, worker_id, max_request_bytes, lane) for r, e in dead]
