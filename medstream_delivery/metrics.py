"""Prometheus metrics of `medstream deliver` (base units, injected registry).

Labels are bounded: `target` in {fhir, hl7, sr}, `reason` a `RejectReason` value.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from medstream_delivery.outcomes import RejectReason

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)


@dataclass(frozen=True)
class DeliveryMetrics:
    """Every metric the delivery process exports."""

    registry: CollectorRegistry
    consumed: Counter
    delivered: Counter
    skipped: Counter
    retried: Counter
    rejected: Counter
    latency: Histogram
    blocked: Gauge
    ready: Gauge

    @classmethod
    def create(cls, target: str, registry: CollectorRegistry | None = None) -> DeliveryMetrics:
        """Register the metrics; every series of `target` starts at zero."""
        reg = registry if registry is not None else CollectorRegistry()
        p = "medstream_delivery_"
        metrics = cls(
            registry=reg,
            consumed=Counter(p + "consumed", "Result records consumed", ["target"], registry=reg),
            delivered=Counter(p + "delivered", "Reports acknowledged by the target",
                              ["target"], registry=reg),
            skipped=Counter(p + "skipped", "Records with nothing for this target (alerts at "
                            "the SR target)", ["target"], registry=reg),
            retried=Counter(p + "retried", "Delivery attempts that will be retried",
                            ["target"], registry=reg),
            rejected=Counter(p + "rejected", "Records sent to the delivery dead-letter topic",
                             ["target", "reason"], registry=reg),
            latency=Histogram(p + "latency_seconds", "Result record's Kafka timestamp to the "
                              "target's acknowledgement", ["target"], buckets=LATENCY_BUCKETS,
                              registry=reg),
            blocked=Gauge(p + "blocked", "1 while the target is unavailable and retried",
                          ["target"], registry=reg),
            ready=Gauge(p + "ready", "1 when /ready answers 200", registry=reg),
        )
        for counter in (metrics.consumed, metrics.delivered, metrics.skipped, metrics.retried):
            counter.labels(target)
        for reason in RejectReason:
            metrics.rejected.labels(target, reason.value)
        metrics.latency.labels(target)
        metrics.blocked.labels(target).set(0)
        return metrics
