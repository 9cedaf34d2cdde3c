"""Wiring of one `medstream deliver TARGET` process: settings -> resolver, target, Kafka
clients, HTTP endpoints, the delivery loop; SIGTERM/SIGINT stop it cleanly."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from kafka import KafkaConsumer, KafkaProducer

from medstream_delivery.adapter import record_decoder
from medstream_delivery.dicom_send import StoreScu
from medstream_delivery.fhir_send import FhirClient
from medstream_delivery.identity import IdentityMap, PseudonymsOnly, Resolver
from medstream_delivery.loop import Backoff, DeliveryLoop
from medstream_delivery.metrics import DeliveryMetrics
from medstream_delivery.mllp_send import MllpClient
from medstream_delivery.settings import TARGETS, DeliverySettings
from medstream_delivery.targets import FhirTarget, Hl7Target, SrTarget, Target
from medstream_delivery.web import Readiness, serve
from worker.errors import ConfigurationError
from worker.security import kafka_security

log = logging.getLogger(__name__)


def resolver_for(settings: DeliverySettings) -> Resolver:
    """The identity map when configured, else pseudonyms only (the default)."""
    options = settings.delivery
    if options.identity_map is None:
        return PseudonymsOnly()
    assert options.patient_system is not None  # checked by DeliveryOptions
    return IdentityMap(options.identity_map, options.patient_system, options.patient_authority)


def target_for(name: str, settings: DeliverySettings, resolver: Resolver) -> Target:
    """The target called `name` from its settings block."""
    timeout = settings.delivery.timeout_s
    if name == "fhir":
        fhir = settings.fhir
        if fhir.base_url is None:
            raise ConfigurationError("medstream deliver fhir needs MEDSTREAM_FHIR__BASE_URL")
        token = fhir.bearer_token.get_secret_value() if fhir.bearer_token else None
        return FhirTarget(FhirClient(fhir.base_url, timeout, token, fhir.cafile, fhir.certfile,
                                     fhir.keyfile), resolver)
    if name == "hl7":
        mllp = settings.mllp
        return Hl7Target(MllpClient(mllp.host, mllp.port, timeout), resolver,
                         (mllp.sending_application, mllp.sending_facility),
                         (mllp.receiving_application, mllp.receiving_facility))
    if name == "sr":
        pacs = settings.pacs
        return SrTarget(StoreScu(pacs.host, pacs.port, pacs.called_ae, pacs.calling_ae, timeout),
                        resolver)
    raise ConfigurationError(f"unknown target {name!r}; one of {', '.join(TARGETS)}")


@contextmanager
def _kafka(settings: DeliverySettings, name: str) -> Iterator[tuple[KafkaConsumer, KafkaProducer]]:
    options, security = settings.delivery, kafka_security(settings, "kafka-python")
    topics = [options.studies_topic] if name == "sr" else [options.studies_topic,
                                                           options.alerts_topic]
    consumer = KafkaConsumer(
        *topics, bootstrap_servers=settings.kafka_bootstrap,
        group_id=f"{options.group_prefix}-{name}", client_id=f"medstream-deliver-{name}",
        enable_auto_commit=False, auto_offset_reset="earliest", max_poll_records=100,
        session_timeout_ms=int(settings.broker_session_timeout_s * 1000),
        heartbeat_interval_ms=int(settings.broker_session_timeout_s * 1000 / 3), **security)
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all",
                             client_id=f"medstream-deliver-{name}-deadletter",
                             max_request_size=settings.producer_max_request_size, **security)
    try:
        yield consumer, producer
    finally:
        consumer.close(autocommit=False)
        producer.close(timeout=10)


def deliver(name: str, settings: DeliverySettings, limit: int | None = None) -> int:
    """Run the delivery loop for target `name` until SIGTERM/SIGINT (or `limit` records)."""
    resolver = resolver_for(settings)
    target = target_for(name, settings, resolver)
    options = settings.delivery
    metrics = DeliveryMetrics.create(name)
    readiness = Readiness(metrics, stall_s=max(120.0, 6 * options.timeout_s))
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    web = serve(options.web_host, options.web_port, metrics, readiness)
    log.info("medstream deliver %s: /metrics /ready on %s:%d", name, options.web_host,
             web.server_address[1])
    try:
        with _kafka(settings, name) as (consumer, producer):
            DeliveryLoop(consumer, producer, target, record_decoder(options.studies_topic,
                                                                    options.alerts_topic),
                         metrics, readiness, options.deadletter_topic,
                         Backoff(options.retry_initial_s, options.retry_max_s), stop,
                         limit=limit).run()
    finally:
        web.shutdown()
    return 0
