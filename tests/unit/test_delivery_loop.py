"""The delivery loop against fakes: commit after acknowledgement, retry while unavailable,
dead letters for rejections, nothing committed when stopped mid-retry."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from delivery_samples import alert_report, study_report
from kafka.structs import TopicPartition

from medstream_delivery.loop import Backoff, DeliveryLoop
from medstream_delivery.metrics import DeliveryMetrics
from medstream_delivery.outcomes import Rejected, RejectReason, TargetUnavailable
from medstream_delivery.reports import Report, StudyReport
from medstream_delivery.web import Readiness

TP = TopicPartition("studies", 0)


@dataclass
class Record:
    offset: int
    value: bytes | None = b"{}"
    topic: str = "studies"
    partition: int = 0
    key: bytes = b"k"
    timestamp: int = 0
    headers: list = field(default_factory=lambda: [("trace", b"1")])


class FakeConsumer:
    def __init__(self, records: list[Record]) -> None:
        self.batches = [{TP: records}]
        self.committed: list[int] = []
        self.paused_parts: set = set()
        self.polls_while_paused = 0

    def poll(self, timeout_ms: int) -> dict:
        if self.paused_parts:
            self.polls_while_paused += 1
            return {}
        return self.batches.pop(0) if self.batches else {}

    def assignment(self) -> set:
        return {TP}

    def pause(self, *parts: TopicPartition) -> None:
        self.paused_parts |= set(parts)

    def resume(self, *parts: TopicPartition) -> None:
        self.paused_parts -= set(parts)

    def paused(self) -> set:
        return set(self.paused_parts)

    def commit(self, offsets: dict) -> None:
        self.committed.append(offsets[TP].offset)


class Future:
    def get(self, timeout: float) -> None:
        return None


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes, dict]] = []

    def send(self, topic: str, key: bytes, value: bytes, headers: list) -> Future:
        self.sent.append((topic, key, value, dict(headers)))
        return Future()


@dataclass
class FakeTarget:
    outcomes: list[Exception | None]  # one per call; None = delivered
    name: str = "fhir"
    delivered: list[list[Report]] = field(default_factory=list)
    stop_on_unavailable: threading.Event | None = None

    def wants(self, report: Report) -> bool:
        return isinstance(report, StudyReport)

    def deliver(self, reports: Sequence[Report]) -> None:
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if outcome is not None:
            if self.stop_on_unavailable is not None:
                self.stop_on_unavailable.set()
            raise outcome
        self.delivered.append(list(reports))


def _run(records: list[Record], target: FakeTarget, decode: Any = None,
         limit: int | None = None) -> tuple[FakeConsumer, FakeProducer, DeliveryMetrics, Readiness]:
    consumer, producer = FakeConsumer(records), FakeProducer()
    metrics = DeliveryMetrics.create(target.name)
    readiness = Readiness(metrics)
    stop = target.stop_on_unavailable or threading.Event()
    loop = DeliveryLoop(consumer, producer, target, decode or (lambda r: [study_report()]),
                        metrics, readiness, "delivery-deadletter", Backoff(0.001, 0.002), stop,
                        limit=limit if limit is not None else len(records))
    loop.run()
    return consumer, producer, metrics, readiness


def _count(metrics: DeliveryMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(f"medstream_delivery_{name}_total",
                                             {"target": "fhir", **labels}) or 0.0


def test_each_record_is_committed_after_its_delivery() -> None:
    target = FakeTarget([])
    consumer, producer, metrics, readiness = _run([Record(5), Record(6)], target)
    assert consumer.committed == [6, 7] and len(target.delivered) == 2
    assert producer.sent == [] and _count(metrics, "delivered") == 2
    assert readiness.blockers() == []


def test_an_unavailable_target_is_retried_until_it_answers_then_committed_once() -> None:
    target = FakeTarget([TargetUnavailable("down"), TargetUnavailable("down"), None])
    consumer, _, metrics, readiness = _run([Record(0)], target)
    assert consumer.committed == [1] and len(target.delivered) == 1
    assert _count(metrics, "retried") == 2 and _count(metrics, "delivered") == 1
    assert consumer.polls_while_paused >= 1 and not consumer.paused()
    assert readiness.blockers() == []
    assert metrics.registry.get_sample_value("medstream_delivery_blocked", {"target": "fhir"}) == 0


def test_stopping_during_a_retry_commits_nothing_and_names_the_target() -> None:
    target = FakeTarget([TargetUnavailable("down")], stop_on_unavailable=threading.Event())
    consumer, producer, _, readiness = _run([Record(0), Record(1)], target)
    assert consumer.committed == [] and producer.sent == []
    assert readiness.blockers() == ["target:fhir"]


def test_a_rejection_is_dead_lettered_with_the_target_error_then_committed() -> None:
    target = FakeTarget([Rejected(RejectReason.TARGET_REJECTED, "HTTP 422: bad status")])
    consumer, producer, metrics, _ = _run([Record(3)], target)
    (topic, key, value, headers) = producer.sent[0]
    assert (topic, key, value) == ("delivery-deadletter", b"k", b"{}")
    assert headers == {"trace": b"1", "error.type": b"target_rejected", "target": b"fhir",
                       "error.message": b"HTTP 422: bad status", "source.topic": b"studies",
                       "source.partition": b"0", "source.offset": b"3"}
    assert consumer.committed == [4]
    assert _count(metrics, "rejected", reason="target_rejected") == 1


def test_an_undecodable_record_is_dead_lettered() -> None:
    def decode(record: Record) -> list[Report]:
        raise Rejected(RejectReason.UNDECODABLE, "schema: field 'revision' must be an integer")

    consumer, producer, _, _ = _run([Record(0)], FakeTarget([]), decode)
    assert producer.sent[0][3]["error.type"] == b"undecodable"
    assert consumer.committed == [1]


def test_an_unexpected_error_is_that_records_dead_letter_not_an_exit() -> None:
    target = FakeTarget([KeyError("PSN-secret"), None])
    consumer, producer, _, _ = _run([Record(0), Record(1)], target)
    assert producer.sent[0][3]["error.message"] == b"unexpected KeyError"
    assert consumer.committed == [1, 2] and len(target.delivered) == 1


def test_records_with_nothing_for_the_target_and_tombstones_are_skipped_and_committed() -> None:
    target = FakeTarget([])
    consumer, _, metrics, _ = _run([Record(0), Record(1, value=None)], target,
                                   lambda r: [alert_report()])
    assert consumer.committed == [1, 2] and target.delivered == []
    assert _count(metrics, "skipped") == 2


def test_the_limit_stops_after_that_many_commits() -> None:
    target = FakeTarget([])
    consumer, _, _, _ = _run([Record(0), Record(1), Record(2)], target, limit=2)
    assert consumer.committed == [1, 2]


def test_backoff_grows_and_is_capped() -> None:
    backoff = Backoff(0.5, 4.0)
    assert 0.25 <= backoff.delay(0) <= 0.5
    assert 2.0 <= backoff.delay(10) <= 4.0
