"""Prometheus metrics of the producers and receivers, built against an injected registry.

Labels are bounded: `source` is the producer kind, `reason` a short slug, `status` a DICOM
status code or an HL7 acknowledgment code. Never a patient identifier.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, start_http_server

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProducerMetrics:
    """Counters shared by `produce scans|vitals` and `receive dicom|hl7`."""

    received: Counter
    published: Counter
    rejected: Counter
    failed: Counter
    claim_checks: Counter
    responses: Counter
    unknown_priority: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> ProducerMetrics:
        """Register every metric on `registry`."""
        return cls(
            received=Counter(
                "medstream_producer_received_total",
                "Inputs received (files, C-STORE requests, HL7 messages, vital windows)",
                ["source"],
                registry=registry,
            ),
            published=Counter(
                "medstream_producer_published_total",
                "Messages acknowledged by Kafka",
                ["source", "topic"],
                registry=registry,
            ),
            rejected=Counter(
                "medstream_producer_rejected_total",
                "Inputs rejected as unusable (not published)",
                ["source", "reason"],
                registry=registry,
            ),
            failed=Counter(
                "medstream_producer_publish_failures_total",
                "Messages Kafka did not acknowledge",
                ["source"],
                registry=registry,
            ),
            claim_checks=Counter(
                "medstream_producer_claim_checks_total",
                "Scans sent by claim-check (file stored, envelope published)",
                ["source"],
                registry=registry,
            ),
            responses=Counter(
                "medstream_receiver_responses_total",
                "Responses sent by receivers (DICOM status / HL7 ACK code)",
                ["source", "status"],
                registry=registry,
            ),
            unknown_priority=Counter(
                "medstream_producer_unknown_priority",
                "Events whose priority value is unknown, published as routine (docs/lanes.md)",
                ["source"],
                registry=registry,
            ),
        )


def serve_metrics(registry: CollectorRegistry, host: str, port: int, *, required: bool) -> None:
    """Expose `registry` on http://host:port/metrics; port 0 disables it.

    A port already in use raises OSError when `required`, and only logs a warning otherwise.
    """
    if port == 0:
        return
    try:
        start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        if required:
            raise OSError(f"cannot serve metrics on {host}:{port}: {exc}") from exc
        log.warning("metrics not served: %s:%d is unavailable (%s)", host, port, exc)
