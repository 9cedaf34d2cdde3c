"""The delivery loop: consume results at least once, deliver, commit only after the target's
acknowledgement (or after the record's dead letter is acknowledged by Kafka).

Records are handled one at a time in partition order. While the target is unavailable the same
report is retried with exponential backoff and jitter, forever; meanwhile the partitions are
paused and the consumer keeps polling (so the group does not evict it), `/ready` names the
target and nothing is committed. A stop (SIGTERM) during a retry leaves the record uncommitted:
the next run delivers it again, and the target recognises the repeat (docs/delivery.md).
A dead letter Kafka does not acknowledge, or a broken consumer, ends the process (fail-stop).
"""

from __future__ import annotations

import logging
import random
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kafka.errors import CommitFailedError
from kafka.structs import OffsetAndMetadata, TopicPartition

from medstream_delivery.metrics import DeliveryMetrics
from medstream_delivery.outcomes import Rejected, RejectReason, TargetUnavailable
from medstream_delivery.reports import Report
from medstream_delivery.targets import Target
from medstream_delivery.web import STARTING, Readiness, target_blocker

log = logging.getLogger(__name__)
POLL_MS = 500
DEADLETTER_TIMEOUT_S = 30.0
Decode = Callable[[Any], list[Report]]  # a consumed record -> its reports, or Rejected


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: initial * 2**attempt, capped, times 0.5..1."""

    initial_s: float
    max_s: float

    def delay(self, attempt: int) -> float:
        return min(self.max_s, self.initial_s * 2 ** min(attempt, 30)) * random.uniform(0.5, 1.0)


def deadletter_headers(record: Any, target: str, error: Rejected) -> list[tuple[str, bytes]]:
    """The record's own headers plus error.type/error.message/target/source.*."""
    ours = {"error.type": error.reason.value, "error.message": str(error), "target": target,
            "source.topic": record.topic, "source.partition": str(record.partition),
            "source.offset": str(record.offset)}
    kept = [(k, v) for k, v in (record.headers or ()) if k not in ours]
    return kept + [(k, v.encode("utf-8")) for k, v in ours.items()]


class DeliveryLoop:
    """Consumes, delivers to one target, dead-letters, commits (module doc)."""

    def __init__(self, consumer: Any, producer: Any, target: Target, decode: Decode,
                 metrics: DeliveryMetrics, readiness: Readiness, deadletter_topic: str,
                 backoff: Backoff, stop: threading.Event, limit: int | None = None) -> None:
        self._consumer, self._producer, self._target = consumer, producer, target
        self._decode, self._metrics, self._readiness = decode, metrics, readiness
        self._deadletter_topic, self._backoff, self._stop = deadletter_topic, backoff, stop
        self._name = target.name
        self._left = limit  # records to commit before stopping (None: run until stopped)

    def run(self) -> None:
        """Until `stop` is set."""
        while not self._stop.is_set():
            batch = self._consumer.poll(timeout_ms=POLL_MS)
            self._readiness.beat()
            if self._consumer.assignment():
                self._readiness.clear(STARTING)
            for records in batch.values():
                for record in records:
                    if self._stop.is_set() or not self.handle(record):
                        break

    def handle(self, record: Any) -> bool:
        """Deliver or dead-letter one record and commit it; False when it was left
        uncommitted (stopping, or its partition moved to another member)."""
        self._metrics.consumed.labels(self._name).inc()
        try:
            reports = [] if record.value is None else self._decode(record)  # None: tombstone
            reports = [r for r in reports if self._target.wants(r)]
        except Rejected as exc:
            self._dead_letter(record, exc)
            return self._commit(record)
        if not reports:
            self._metrics.skipped.labels(self._name).inc()
            return self._commit(record)
        if not self._deliver(record, reports):
            return False
        return self._commit(record)

    def _deliver(self, record: Any, reports: list[Report]) -> bool:
        attempt = 0
        while True:
            try:
                self._target.deliver(reports)
            except TargetUnavailable as exc:
                self._metrics.retried.labels(self._name).inc()
                self._set_blocked(True)
                log.warning("%s unavailable (attempt %d), retrying: %s", self._name,
                            attempt + 1, exc)
                if not self._wait(self._backoff.delay(attempt), record):
                    return False
                attempt += 1
                continue
            except Rejected as exc:
                self._dead_letter(record, exc)
            except Exception as exc:  # noqa: BLE001 - a bug on this record: its dead letter
                where = traceback.extract_tb(exc.__traceback__)[-1]  # no text: it may hold PHI
                log.error("unexpected %s at %s:%d delivering a record to %s",
                          type(exc).__name__, where.filename, where.lineno, self._name)
                self._dead_letter(record, Rejected(RejectReason.UNBUILDABLE,
                                                   f"unexpected {type(exc).__name__}"))
            else:
                self._metrics.delivered.labels(self._name).inc(len(reports))
                self._metrics.latency.labels(self._name).observe(
                    max(0.0, time.time() - record.timestamp / 1000))
            self._set_blocked(False)
            return True

    def _set_blocked(self, blocked: bool) -> None:
        consumer = self._consumer
        if blocked:
            self._readiness.block(target_blocker(self._name))
            consumer.pause(*consumer.assignment())
        else:
            self._readiness.clear(target_blocker(self._name))
            if consumer.paused():
                consumer.resume(*consumer.paused())
        self._metrics.blocked.labels(self._name).set(1 if blocked else 0)

    def _wait(self, delay_s: float, record: Any) -> bool:
        """Sleep `delay_s` while polling the paused consumer; False when stopping or when the
        record's partition was revoked meanwhile."""
        tp = TopicPartition(record.topic, record.partition)
        deadline = time.monotonic() + delay_s
        while (left := deadline - time.monotonic()) > 0:
            if self._stop.wait(min(left, 1.0)):
                return False
            fetched = self._consumer.poll(timeout_ms=0)
            self._readiness.beat()
            for other, records in fetched.items():  # newly assigned, not yet paused
                self._consumer.seek(other, min(r.offset for r in records))
            self._consumer.pause(*self._consumer.assignment())
            if tp not in self._consumer.assignment():
                log.warning("partition moved to another member while %s was unavailable",
                            self._name)
                self._set_blocked(False)
                return False
        return not self._stop.is_set()

    def _dead_letter(self, record: Any, error: Rejected) -> None:
        future = self._producer.send(self._deadletter_topic, key=record.key, value=record.value,
                                     headers=deadletter_headers(record, self._name, error))
        future.get(timeout=DEADLETTER_TIMEOUT_S)  # raises: fail-stop, nothing committed
        self._metrics.rejected.labels(self._name, error.reason.value).inc()
        log.warning("record sent to %s by %s: %s", self._deadletter_topic, self._name,
                    error.reason.value)

    def _commit(self, record: Any) -> bool:
        tp = TopicPartition(record.topic, record.partition)
        try:
            self._consumer.commit({tp: OffsetAndMetadata(record.offset + 1, "", -1)})
        except CommitFailedError:
            log.warning("commit refused (partition reassigned); the new owner re-delivers")
            return False
        if self._left is not None:
            self._left -= 1
            if self._left <= 0:
                self._stop.set()
        return True
