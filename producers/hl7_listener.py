"""`medstream receive hl7`: an MLLP listener for ORU^R01 vital signs, publishing to `vitals`.

Each message is answered on the same connection: AA once its window is acknowledged by
Kafka; AR (rejected: not HL7, wrong type) or AE (error: no patient, no usable vital sign, a
unit or date that cannot be read, Kafka unavailable - the sender should retry) with MSA-3 and
an ERR segment otherwise. Whatever goes wrong with one message is that message's AE: the
connection stays open for the next one.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from hl7.mllp import InvalidBlockError, start_hl7_server

from producers.deid.pseudonym import Pseudonymizer
from producers.hl7_parse import ERR_APPLICATION, Hl7Reject, build_ack, parse_oru
from producers.hl7_windows import PatientWindows
from producers.metrics import ProducerMetrics
from producers.priority import hl7_priority, publish_topic
from producers.publisher import Publisher, PublishFailed
from producers.settings import ProducerSettings
from producers.vitals_windows import encode_window

log = logging.getLogger(__name__)
SOURCE = "hl7"
MAX_MESSAGE_BYTES = 1024 * 1024


@dataclass
class Hl7Receiver:
    """Turns one HL7 message into a published window and its ACK."""

    settings: ProducerSettings
    publisher: Publisher
    metrics: ProducerMetrics
    pseudonyms: Pseudonymizer | None
    windows: PatientWindows = field(init=False)

    def __post_init__(self) -> None:
        self.windows = PatientWindows(
            length=self.settings.window_len, interval_s=self.settings.hl7_interval_s
        )

    def handle(self, text: str) -> str:
        """Process one message (blocking: waits for Kafka) and return the ACK to send."""
        self.metrics.received.labels(SOURCE).inc()
        try:
            self._publish(text)
        except Hl7Reject as exc:
            return self._nak(text, exc)
        except Exception as exc:  # noqa: BLE001 - a bug on this one message: AE, connection kept
            log.error("HL7 message failed: %s (a bug)", type(exc).__name__)
            return self._nak(text, Hl7Reject(
                "AE", "internal_error", f"message not processed ({type(exc).__name__})",
                ERR_APPLICATION))
        self.metrics.responses.labels(SOURCE, "AA").inc()
        return _ack(text, "AA")

    def _nak(self, text: str, exc: Hl7Reject) -> str:
        self.metrics.rejected.labels(SOURCE, exc.reason).inc()
        log.warning("HL7 message answered %s: %s: %s", exc.ack_code, exc.reason, exc)
        self.metrics.responses.labels(SOURCE, exc.ack_code).inc()
        return _ack(text, exc.ack_code, exc)

    def _publish(self, text: str) -> None:
        message = parse_oru(text, datetime.now(UTC), ZoneInfo(self.settings.hl7_timezone))
        if message.unknown_codes:
            self.metrics.rejected.labels(SOURCE, "unknown_code").inc(len(message.unknown_codes))
        if message.invalid_values:
            self.metrics.rejected.labels(SOURCE, "invalid_value").inc(message.invalid_values)
        patient, device = message.patient_id, message.device_id
        if self.pseudonyms is not None:
            patient = self.pseudonyms.patient(patient)
            device = "DEV-" + self.pseudonyms.token("device", device)
        window = self.windows.add(patient, device, message.observations)
        # a re-sent message (same patient and MSH-10) gets the same event id
        digest = hashlib.sha256(f"{patient}\x00{message.control_id}".encode()).hexdigest()
        event = "hl7-" + digest[:32]
        topic = publish_topic(self.settings, self.settings.vitals, hl7_priority(text),
                              self.metrics.unknown_priority.labels(SOURCE).inc)
        try:
            self.publisher.publish(
                topic,
                patient.encode(),
                encode_window(window, event),
                [("content-type", b"application/json")],
            )
        except PublishFailed as exc:
            self.metrics.failed.labels(SOURCE).inc()
            raise Hl7Reject(
                "AE",
                "kafka_unavailable",
                "not stored, retry later: Kafka did not acknowledge",
                ERR_APPLICATION,
            ) from exc
        self.metrics.published.labels(SOURCE, topic).inc()


async def serve(receiver: Hl7Receiver, stop: asyncio.Event) -> None:
    """Listen on settings.hl7_host:hl7_port until `stop` is set."""
    executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="hl7")
    loop = asyncio.get_running_loop()

    async def connection(reader, writer) -> None:  # one task per MLLP connection
        try:
            while not reader.at_eof():
                try:
                    block = await reader.readblock()
                except asyncio.IncompleteReadError:
                    break
                except (InvalidBlockError, ValueError) as exc:  # broken framing or too large
                    receiver.metrics.rejected.labels(SOURCE, "mllp_framing").inc()
                    log.warning("closing MLLP connection: %s", exc)
                    break
                text = _decode(block)
                ack = await loop.run_in_executor(executor, receiver.handle, text)
                writer.writeblock(ack.encode("utf-8"))
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    settings = receiver.settings
    server = await start_hl7_server(
        connection, settings.hl7_host, settings.hl7_port, limit=MAX_MESSAGE_BYTES
    )
    log.info("HL7 MLLP listener on %s:%d", settings.hl7_host, settings.hl7_port)
    try:
        async with server:
            await stop.wait()
    finally:
        executor.shutdown(wait=True)


def _ack(text: str, code: str, error: Hl7Reject | None = None) -> str:
    """build_ack, falling back to an ACK that copies nothing from a message it cannot read."""
    try:
        return build_ack(text, code, error)
    except Exception:  # noqa: BLE001 - the sender must get an answer whatever `text` holds
        return build_ack("", code, error)


def _decode(block: bytes) -> str:
    """HL7 v2 text: UTF-8, falling back to ISO-8859-1 (never fails)."""
    try:
        return block.decode("utf-8")
    except UnicodeDecodeError:
        return block.decode("latin-1")
