"""Prometheus metrics of the worker, built against an injected registry (base units).

Labels are bounded: `kind` in {scan, vitals}, `lane` in {stat, routine}, `model` = Triton model
name, `reason` = a `DeadLetterReason` value (a `SkipReason` one for skips), `code` = gRPC status
name, `channel` = a vitals channel name. Never a patient or event identifier.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from worker.contracts.skip import SkipReason
from worker.contracts.vitals import CHANNELS
from worker.errors import VITALS, reasons_for

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
INFERENCE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
E2E_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


@dataclass(frozen=True)
class Metrics:
    """Every metric the worker exports."""

    registry: CollectorRegistry
    messages_consumed: Counter
    predictions: Counter
    deadletters: Counter
    deadletters_bounded: Counter
    implausible_values: Counter
    event_id_conflicts: Counter
    skipped: Counter
    batch_size: Histogram
    inference_seconds: Histogram
    end_to_end_seconds: Histogram
    inference_errors: Counter
    inflight_requests: Gauge
    consumer_lag: Gauge
    ready: Gauge
    circuit_open: Gauge
    # STAT lanes (docs/lanes.md): `lane` in {stat, routine}; each process serves one lane
    lane_records: Counter
    lane_end_to_end_seconds: Histogram
    lane_lag: Gauge
    lane_throttled_seconds: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None) -> Metrics:
        """Register all metrics on `registry` (a fresh one when None)."""
        reg = registry if registry is not None else CollectorRegistry()
        p = "medstream_"
        return cls(
            registry=reg,
            messages_consumed=Counter(
                p + "messages_consumed", "Input messages consumed", ["kind"], registry=reg
            ),
            predictions=Counter(
                p + "predictions", "Predictions produced and acknowledged by Kafka",
                ["kind", "model"], registry=reg,
            ),
            deadletters=Counter(
                p + "deadletters", "Dead letters produced and acknowledged by Kafka",
                ["kind", "reason"], registry=reg,
            ),
            deadletters_bounded=Counter(
                p + "deadletters_bounded", "Dead letters too large for the producer or broker, "
                "sent as a bounded stub (digest and size of the original)", ["kind"], registry=reg,
            ),
            implausible_values=Counter(
                p + "implausible_values", "Values outside their channel's plausible range, "
                "masked as missing in served inputs", ["kind", "channel"], registry=reg,
            ),
            event_id_conflicts=Counter(
                p + "event_id_conflicts", "Predictions whose event id this worker saw recently "
                "with another input digest", ["kind"], registry=reg,
            ),
            skipped=Counter(
                p + "skipped", "Valid inputs no model is meant for (skip records acknowledged)",
                ["kind", "reason"], registry=reg,
            ),
            batch_size=Histogram(
                p + "batch_size", "Records per inference request", ["model"],
                buckets=BATCH_BUCKETS, registry=reg,
            ),
            inference_seconds=Histogram(
                p + "inference_seconds", "Duration of one Triton inference request", ["model"],
                buckets=INFERENCE_BUCKETS, registry=reg,
            ),
            end_to_end_seconds=Histogram(
                p + "end_to_end_seconds", "Event time to prediction produced", ["kind"],
                buckets=E2E_BUCKETS, registry=reg,
            ),
            inference_errors=Counter(
                p + "inference_errors", "Failed inference requests", ["model", "code"],
                registry=reg,
            ),
            inflight_requests=Gauge(
                p + "inflight_requests", "Triton requests in flight", ["model"], registry=reg
            ),
            consumer_lag=Gauge(
                p + "consumer_lag", "Messages behind the high watermark",
                ["topic", "partition"], registry=reg,
            ),
            ready=Gauge(p + "ready", "1 when the worker is ready to serve", registry=reg),
            circuit_open=Gauge(
                p + "circuit_open", "1 while the Triton circuit breaker is open", ["model"],
                registry=reg,
            ),
            lane_records=Counter(
                p + "lane_records", "Input records served and acked, per lane", ["kind", "lane"],
                registry=reg,
            ),
            lane_end_to_end_seconds=Histogram(
                p + "lane_end_to_end_seconds", "Kafka timestamp of the input to its ack, per lane",
                ["kind", "lane"], buckets=E2E_BUCKETS, registry=reg,
            ),
            lane_lag=Gauge(
                p + "lane_lag", "Messages behind the high watermark, per lane", ["kind", "lane"],
                registry=reg,
            ),
            lane_throttled_seconds=Counter(
                p + "lane_throttled_seconds", "Time the STAT worker yielded to routine work "
                "(its duty cycle cap, MEDSTREAM_LANES__STAT_WEIGHT)", ["kind"], registry=reg,
            ),
        )

    def preinitialise(self, served: Iterable[tuple[str, str]]) -> None:
        """Export every series of each served (kind, model) at zero from start-up, so that
        rate() sees the first increment and the breaker and in-flight panels have data; that
        includes a dead-letter series for every reason the kind can produce."""
        for kind, model in served:
            self.messages_consumed.labels(kind)
            for reason in reasons_for(kind):
                self.deadletters.labels(kind, reason.value)
            self.deadletters_bounded.labels(kind)
            self.event_id_conflicts.labels(kind)
            for channel in CHANNELS if kind == VITALS else ():
                self.implausible_values.labels(kind, channel)
            self.predictions.labels(kind, model)
            self.end_to_end_seconds.labels(kind)
            self.batch_size.labels(model)
            self.inference_seconds.labels(model)
            self.inflight_requests.labels(model).set(0)
            self.circuit_open.labels(model).set(0)

    def preinitialise_skips(self, kinds: Iterable[str]) -> None:
        """Export `medstream_skipped_total{kind, reason}` at zero for every skip reason of
        each kind that routes (scans)."""
        for kind in kinds:
            for reason in SkipReason:
                self.skipped.labels(kind, reason.value)

    def preinitialise_lane(self, lane: str, kinds: Iterable[str]) -> None:
        """Export the lane series of each kind this process serves at zero from start-up."""
        for kind in kinds:
            self.lane_records.labels(kind, lane)
            self.lane_end_to_end_seconds.labels(kind, lane)
            self.lane_lag.labels(kind, lane).set(0)
            self.lane_throttled_seconds.labels(kind)
