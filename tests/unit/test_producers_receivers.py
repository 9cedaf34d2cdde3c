"""Receiver decisions without sockets: DICOM status and HL7 ACK per outcome.

The Kafka side is a recording stand-in (unit tests only); the real broker is exercised in
tests/integration/test_receivers.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import hl7
import pytest
from prometheus_client import CollectorRegistry
from pydicom.data import get_testdata_file

from producers.deid.pseudonym import Pseudonymizer
from producers.dicom_scp import CANNOT_UNDERSTAND, OUT_OF_RESOURCES, SUCCESS, StoreHandler
from producers.hl7_listener import Hl7Receiver
from producers.metrics import ProducerMetrics
from producers.publisher import PublishFailed
from producers.settings import ProducerSettings

KEY = "unit-test-key-0123456789"
CT = Path(get_testdata_file("CT_small.dcm"))
ORU = (
    "MSH|^~\\&|MON|ICU|MEDSTREAM|HOSP|20260101120000||ORU^R01|MSG1|P|2.5\r"
    "PID|1||MRN123||DOE^JOHN\rOBX|1|NM|8867-4^HR^LN||82|/min|||||F\r"
)


@dataclass
class RecordingPublisher:
    """Records what would be published; `fail=True` behaves like an unacknowledged send."""

    fail: bool = False
    sent: list[tuple[str, bytes, bytes]] = field(default_factory=list)

    def publish(self, topic: str, key: bytes, value: bytes, headers=None) -> None:
        if self.fail:
            raise PublishFailed("broker did not acknowledge")
        self.sent.append((topic, key, value))


@dataclass
class FakeStoreEvent:
    data: bytes

    def encoded_dataset(self, include_meta: bool = True) -> bytes:
        return self.data

    @property
    def assoc(self):
        return type("Assoc", (), {"requestor": type("R", (), {"ae_title": "MODALITY"})()})()


def _settings(tmp_path: Path) -> ProducerSettings:
    return ProducerSettings(
        pseudonym_key=KEY, claim_check_dir=tmp_path, scan={"topic": "s"}, vitals={"topic": "v"}
    )


def _metrics() -> tuple[ProducerMetrics, CollectorRegistry]:
    registry = CollectorRegistry()
    return ProducerMetrics.create(registry), registry


@pytest.mark.parametrize(
    ("data", "fail", "status"),
    [
        (CT.read_bytes(), False, SUCCESS),
        (b"junk", False, CANNOT_UNDERSTAND),
        (CT.read_bytes(), True, OUT_OF_RESOURCES),
    ],
)
def test_store_status_follows_the_kafka_outcome(tmp_path: Path, data, fail, status) -> None:
    publisher = RecordingPublisher(fail=fail)
    metrics, registry = _metrics()
    handler = StoreHandler(_settings(tmp_path), publisher, metrics, Pseudonymizer(KEY.encode()))
    assert handler.on_store(FakeStoreEvent(data)) == status
    assert len(publisher.sent) == (1 if status == SUCCESS else 0)
    label = {"source": "dicom_scp", "status": f"0x{status:04X}"}
    assert registry.get_sample_value("medstream_receiver_responses_total", label) == 1.0


@pytest.mark.parametrize(
    ("text", "fail", "code"),
    [(ORU, False, "AA"), (ORU, True, "AE"), (ORU.replace("ORU^R01", "ADT^A01"), False, "AR")],
)
def test_hl7_ack_follows_the_kafka_outcome(
    tmp_path: Path, text: str, fail: bool, code: str
) -> None:
    publisher = RecordingPublisher(fail=fail)
    metrics, registry = _metrics()
    receiver = Hl7Receiver(_settings(tmp_path), publisher, metrics, Pseudonymizer(KEY.encode()))
    ack = hl7.parse(receiver.handle(text))
    assert str(ack.segment("MSA")(1)) == code
    assert len(publisher.sent) == (1 if code == "AA" else 0)
    for _, key, value in publisher.sent:
        assert key.startswith(b"PSN-") and b"MRN123" not in value and b"DOE" not in value
    assert (
        registry.get_sample_value(
            "medstream_receiver_responses_total", {"source": "hl7", "status": code}
        )
        == 1.0
    )


def test_settings_require_a_long_enough_key() -> None:
    with pytest.raises(ValueError):
        ProducerSettings(pseudonym_key="short")
    assert ProducerSettings(deid=False, pseudonym_key=None).deid is False


def test_hl7_any_failure_on_one_message_is_answered_ae(tmp_path: Path, monkeypatch) -> None:
    """A bug while handling one message (here: the window store raising) still gets an AE."""
    metrics, registry = _metrics()
    receiver = Hl7Receiver(_settings(tmp_path), RecordingPublisher(), metrics,
                           Pseudonymizer(KEY.encode()))

    def broken(*args: object) -> None:
        raise RuntimeError("MRN123 must not leak")

    monkeypatch.setattr(receiver.windows, "add", broken)
    ack = receiver.handle(ORU)
    msa = hl7.parse(ack).segment("MSA")
    assert str(msa(1)) == "AE" and str(msa(2)) == "MSG1" and "RuntimeError" in str(msa(3))
    assert "MRN123" not in ack
    label = {"source": "hl7", "reason": "internal_error"}
    assert registry.get_sample_value("medstream_producer_rejected_total", label) == 1.0
