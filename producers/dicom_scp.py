"""`medstream receive dicom`: a DICOM C-STORE SCP (with C-ECHO) that publishes to `scans`.

A C-STORE is answered with Success (0x0000) only after Kafka acknowledged the message
(acks=all); an unusable instance gets 0xC000 (cannot understand) and a Kafka failure gets
0xA700 (out of resources), so the sending modality or PACS keeps it and retries.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification
from pynetdicom.transport import ThreadedAssociationServer

from producers.claimcheck import ClaimCheckStore
from producers.deid.pseudonym import Pseudonymizer
from producers.metrics import ProducerMetrics
from producers.priority import publish_topic
from producers.publisher import Publisher, PublishFailed
from producers.scan_events import build_scan_event, decodable_syntax
from producers.settings import ProducerSettings
from worker.errors import PoisonMessage

log = logging.getLogger(__name__)
SOURCE = "dicom_scp"
SUCCESS, CANNOT_UNDERSTAND, OUT_OF_RESOURCES = 0x0000, 0xC000, 0xA700


@dataclass
class StoreHandler:
    """Handles EVT_C_STORE and EVT_C_ECHO for one running SCP."""

    settings: ProducerSettings
    publisher: Publisher
    metrics: ProducerMetrics
    pseudonyms: Pseudonymizer | None

    def __post_init__(self) -> None:
        self._store = ClaimCheckStore(self.settings.claim_check_dir)

    def on_store(self, event: evt.Event) -> int:
        """Publish the received instance; the returned status goes back to the sender."""
        self.metrics.received.labels(SOURCE).inc()
        status = self._store_instance(event)
        self.metrics.responses.labels(SOURCE, f"0x{status:04X}").inc()
        return status

    def _store_instance(self, event: evt.Event) -> int:
        try:
            data = event.encoded_dataset(include_meta=True)
            scan = build_scan_event(
                data,
                pseudonyms=self.pseudonyms,
                max_message_bytes=self.settings.max_message_bytes,
                store=self._store,
                rules=self.settings.lanes.stat_rules,
            )
        except PoisonMessage as exc:
            self.metrics.rejected.labels(SOURCE, exc.reason).inc()
            log.warning("C-STORE from %s rejected: %s: %s", _calling_ae(event), exc.reason, exc)
            return CANNOT_UNDERSTAND
        except (ValueError, TypeError, AttributeError, KeyError) as exc:  # unencodable dataset
            self.metrics.rejected.labels(SOURCE, "dicom_decode").inc()
            log.warning("C-STORE from %s rejected: %s", _calling_ae(event), type(exc).__name__)
            return CANNOT_UNDERSTAND
        try:
            topic = publish_topic(self.settings, self.settings.scan, scan.priority,
                                  self.metrics.unknown_priority.labels(SOURCE).inc)
            self.publisher.publish(topic, scan.key, scan.value, scan.headers)
        except PublishFailed as exc:
            self.metrics.failed.labels(SOURCE).inc()
            log.error("C-STORE from %s not acknowledged by Kafka: %s", _calling_ae(event), exc)
            return OUT_OF_RESOURCES
        if scan.claim_checked:
            self.metrics.claim_checks.labels(SOURCE).inc()
        self.metrics.published.labels(SOURCE, topic).inc()
        return SUCCESS

    def on_rejected(self, event: evt.Event) -> None:
        """Count associations we refused (wrong called AE title, no common context)."""
        self.metrics.rejected.labels(SOURCE, "association_rejected").inc()

    def on_echo(self, event: evt.Event) -> int:
        """C-ECHO (verification): always Success while the SCP runs."""
        self.metrics.responses.labels("dicom_echo", "0x0000").inc()
        return SUCCESS


def _calling_ae(event: evt.Event) -> str:
    return str(event.assoc.requestor.ae_title).strip()


def start_scp(handler: StoreHandler) -> ThreadedAssociationServer:
    """Start the SCP in the background on settings.dicom_host:dicom_port; returns the server."""
    settings = handler.settings
    ae = AE(ae_title=settings.dicom_ae_title)
    syntaxes = [uid for uid in ALL_TRANSFER_SYNTAXES if decodable_syntax(uid)]
    for context in AllStoragePresentationContexts:  # the sender picks a syntax we can decode
        ae.add_supported_context(context.abstract_syntax, syntaxes)
    ae.add_supported_context(Verification)
    ae.maximum_pdu_size = 0  # no limit on received PDUs
    ae.require_called_aet = True  # associations must address our AE title
    handlers = [
        (evt.EVT_C_STORE, handler.on_store),
        (evt.EVT_C_ECHO, handler.on_echo),
        (evt.EVT_REJECTED, handler.on_rejected),
    ]
    server = ae.start_server(
        (settings.dicom_host, settings.dicom_port), block=False, evt_handlers=handlers
    )
    log.info(
        "DICOM SCP %s listening on %s:%d",
        settings.dicom_ae_title,
        settings.dicom_host,
        settings.dicom_port,
    )
    return server
