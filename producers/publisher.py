"""The Kafka side of every producer: one idempotent producer, acks=all, bounded retries.

kafka-python is used (thread-safe, synchronous futures) because the DICOM SCP calls back from
worker threads and must answer only after the broker acknowledged the message.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from kafka import KafkaProducer
from kafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError
from kafka.producer.future import FutureRecordMetadata, RecordMetadata

from producers.settings import ProducerSettings
from worker.errors import MedstreamError
from worker.security import kafka_security

log = logging.getLogger(__name__)

Headers = list[tuple[str, bytes]]
_REQUEST_OVERHEAD = 64 * 1024  # record batch + headers on top of the largest value
MAX_INFLIGHT_BYTES = 64 * 1024**2  # values queued but not yet acknowledged


class BrokerUnavailable(MedstreamError):
    """The Kafka broker could not be reached (at start-up) within the bounded time."""


class PublishFailed(MedstreamError):
    """The broker did not acknowledge a message within the delivery timeout."""


class Publisher:
    """A started Kafka producer; `close()` flushes and releases it."""

    def __init__(self, settings: ProducerSettings, client_id: str) -> None:
        self._timeout_s = settings.producer_delivery_timeout_s
        self._inflight = threading.Condition()
        self._inflight_bytes = 0
        try:
            self._producer = KafkaProducer(
                bootstrap_servers=settings.kafka_bootstrap,
                client_id=client_id,
                acks="all",
                enable_idempotence=True,
                retries=settings.producer_retries,
                max_in_flight_requests_per_connection=5,
                bootstrap_timeout_ms=int(settings.producer_bootstrap_timeout_s * 1000),
                # send() may wait this long for topic metadata
                max_block_ms=int(settings.producer_delivery_timeout_s * 1000),
                request_timeout_ms=int(settings.producer_delivery_timeout_s * 500),
                delivery_timeout_ms=int(settings.producer_delivery_timeout_s * 1000),
                max_request_size=settings.max_message_bytes + _REQUEST_OVERHEAD,
                linger_ms=5,
                **kafka_security(settings, "kafka-python"),
            )
        except (KafkaTimeoutError, KafkaConnectionError) as exc:
            raise BrokerUnavailable(
                f"Kafka broker at {settings.kafka_bootstrap} is unreachable "
                f"(gave up after {settings.producer_bootstrap_timeout_s:g} s: {exc})"
            ) from exc

    def send(
        self,
        topic: str,
        key: bytes,
        value: bytes,
        headers: Headers | None = None,
        on_done: Callable[[Exception | None], None] | None = None,
    ) -> FutureRecordMetadata:
        """Queue one message; `on_done(None)` after the ack, `on_done(error)` on failure.

        Blocks while more than MAX_INFLIGHT_BYTES of values await their acknowledgement, so a
        folder of large scans never sits in memory all at once.
        """
        size = len(value)
        with self._inflight:
            if not self._inflight.wait_for(
                lambda: (
                    self._inflight_bytes == 0 or self._inflight_bytes + size <= MAX_INFLIGHT_BYTES
                ),
                timeout=self._timeout_s,
            ):
                raise PublishFailed(
                    f"broker too slow: nothing acknowledged in {self._timeout_s:g} s"
                )
            self._inflight_bytes += size
        try:
            future = self._producer.send(topic, key=key, value=value, headers=headers or [])
        except KafkaError as exc:
            self._release(size)
            raise PublishFailed(f"cannot queue message for {topic}: {exc}") from exc
        future.add_both(lambda _result: self._release(size))
        if on_done is not None:
            future.add_callback(lambda _md: on_done(None))
            future.add_errback(on_done)
        return future

    def _release(self, size: int) -> None:
        with self._inflight:
            self._inflight_bytes -= size
            self._inflight.notify_all()

    def publish(
        self, topic: str, key: bytes, value: bytes, headers: Headers | None = None
    ) -> RecordMetadata:
        """Send one message and wait for the broker's acknowledgement (acks=all)."""
        future = self.send(topic, key, value, headers)
        try:
            return future.get(timeout=self._timeout_s)
        except KafkaError as exc:
            raise PublishFailed(
                f"broker did not acknowledge the message on {topic}: {exc}"
            ) from exc

    def flush(self) -> None:
        """Wait until every queued message is acknowledged or failed."""
        self._producer.flush(timeout=self._timeout_s)

    def close(self) -> None:
        """Flush and close the producer."""
        self._producer.close(timeout=self._timeout_s)
