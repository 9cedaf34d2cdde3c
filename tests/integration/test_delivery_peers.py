"""Each target against a real receiving peer (no Kafka): dcmtk's storescp + dicom3tools'
dciodvfy for the SR, hl7apy's MLLP server with strict validation for the ORU, the FHIR peer
with conditional-create semantics; and each way a peer can misbehave, classified."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from medstream_delivery.dicom_send import StoreScu
from medstream_delivery.fhir_send import FhirClient
from medstream_delivery.identity import PseudonymsOnly
from medstream_delivery.mllp_send import MllpClient
from medstream_delivery.outcomes import Rejected, RejectReason, TargetUnavailable
from medstream_delivery.targets import FhirTarget, Hl7Target, SrTarget
from medstream_tools.ports import free_port
from medstream_tools.soak.waiting import wait_for
from tests.integration.delivery_peers import FhirPeer, MllpPeer, StoreScp
from tests.support.tls_proxy import TlsProxy
from tests.unit.delivery_samples import alert_report, study_report

TIMEOUT_S = 5.0


@pytest.fixture
def pacs(tmp_path: Path) -> Iterator[StoreScp]:
    scp = StoreScp(tmp_path / "pacs", free_port()).start()
    echo = ["echoscu", "-aec", scp.ae, "127.0.0.1", str(scp.port)]
    wait_for("storescp", lambda: subprocess.run(echo, capture_output=True, check=False)
             .returncode == 0, timeout_s=30)
    yield scp
    scp.stop()


@pytest.fixture
def mllp() -> Iterator[MllpPeer]:
    peer = MllpPeer(free_port()).start()
    yield peer
    peer.stop()


@pytest.fixture
def fhir() -> Iterator[FhirPeer]:
    peer = FhirPeer(free_port(), token="s3cret-token").start()
    yield peer
    peer.stop()


def _sr(pacs: StoreScp, port: int | None = None) -> SrTarget:
    return SrTarget(StoreScu("127.0.0.1", port or pacs.port, pacs.ae, "MEDSTREAM_SR", TIMEOUT_S),
                    PseudonymsOnly())


def test_sr_stored_by_storescp_is_valid_and_a_resend_is_the_same_instance(pacs: StoreScp) -> None:
    target = _sr(pacs)
    reports = [study_report(), study_report(revision=2, status="amended"),
               study_report(revision=3, status="amended", images=(), complete=False)]
    target.deliver(reports)
    target.deliver(reports[:1])  # a re-delivery
    files = pacs.files()
    assert len(files) == 3 and pacs.receptions() == 4
    for path in files:
        check = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True,
                               check=False)
        errors = [line for line in check.stderr.splitlines() if line.startswith("Error")]
        assert not errors, check.stderr


def test_sr_target_skips_alerts(pacs: StoreScp) -> None:
    target = _sr(pacs)
    assert not target.wants(alert_report())
    target.deliver([alert_report()])
    assert pacs.files() == []


def test_sr_to_a_closed_port_is_retried(pacs: StoreScp) -> None:
    with pytest.raises(TargetUnavailable):
        _sr(pacs, port=free_port()).deliver([study_report()])


def _hl7(port: int, timeout_s: float = TIMEOUT_S) -> Hl7Target:
    return Hl7Target(MllpClient("127.0.0.1", port, timeout_s), PseudonymsOnly(),
                     ("MEDSTREAM", "RAD"), ("EHR", "HOSP"))


def test_oru_is_accepted_by_a_strict_receiver_and_a_resend_keeps_its_control_id(
        mllp: MllpPeer) -> None:
    target = _hl7(mllp.port)
    target.deliver([study_report(), alert_report()])
    target.deliver([study_report()])
    assert mllp.refused == [] and len(mllp.received) == 3 and mllp.distinct() == 2


def test_negative_ack_is_a_rejection_with_the_nak_text(mllp: MllpPeer) -> None:
    mllp.mode = "reject"
    with pytest.raises(Rejected) as caught:
        _hl7(mllp.port).deliver([study_report()])
    assert caught.value.reason is RejectReason.TARGET_REJECTED
    assert str(caught.value) == "AR: unknown patient"


@pytest.mark.parametrize("mode", ["garbage", "down", "slow"])
def test_garbage_closed_or_silent_receivers_are_retried(mllp: MllpPeer, mode: str) -> None:
    mllp.mode = mode
    with pytest.raises(TargetUnavailable):
        _hl7(mllp.port, timeout_s=1.0).deliver([study_report()])


def test_refused_mllp_connection_is_retried() -> None:
    with pytest.raises(TargetUnavailable):
        _hl7(free_port()).deliver([study_report()])


def _fhir(url: str, token: str | None = "s3cret-token") -> FhirTarget:
    return FhirTarget(FhirClient(url, TIMEOUT_S, token), PseudonymsOnly())


def test_fhir_conditional_create_never_duplicates(fhir: FhirPeer) -> None:
    target = _fhir(fhir.url)
    target.deliver([study_report(), alert_report()])
    counts = {k: fhir.count(k) for k in ("Device", "DiagnosticReport", "Observation",
                                         "RiskAssessment")}
    assert counts == {"Device": 2, "DiagnosticReport": 1, "Observation": 3, "RiskAssessment": 1}
    target.deliver([study_report(), alert_report()])  # a re-delivery
    assert {k: fhir.count(k) for k in counts} == counts
    assert fhir.answers["200-entry"] == fhir.answers["201-entry"] == 7


def test_fhir_refusal_is_a_rejection_with_the_outcome(fhir: FhirPeer) -> None:
    fhir.mode = "reject"
    with pytest.raises(Rejected, match="HTTP 422: resource refused by local policy"):
        _fhir(fhir.url).deliver([study_report()])


@pytest.mark.parametrize("mode", ["garbage", "down"])
def test_fhir_garbage_or_down_is_retried(fhir: FhirPeer, mode: str) -> None:
    fhir.mode = mode
    with pytest.raises(TargetUnavailable):
        _fhir(fhir.url).deliver([study_report()])


def test_fhir_without_the_token_is_retried_not_rejected(fhir: FhirPeer) -> None:
    with pytest.raises(TargetUnavailable, match="HTTP 401"):
        _fhir(fhir.url, token=None).deliver([study_report()])
    assert fhir.count("DiagnosticReport") == 0


def test_fhir_tls_to_a_plain_server_or_a_closed_port_is_retried(fhir: FhirPeer) -> None:
    with pytest.raises(TargetUnavailable):
        _fhir(f"https://127.0.0.1:{fhir.port}/").deliver([study_report()])
    with pytest.raises(TargetUnavailable):
        _fhir(f"http://127.0.0.1:{free_port()}/").deliver([study_report()])


def test_fhir_over_tls_verifies_the_server(fhir: FhirPeer, tmp_path: Path) -> None:
    crt, key = tmp_path / "server.crt", tmp_path / "server.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(crt)], capture_output=True, check=True)
    proxy = TlsProxy(free_port(), fhir.port, crt, key).start()
    url = f"https://127.0.0.1:{proxy.port}/"
    try:
        untrusted = FhirTarget(FhirClient(url, TIMEOUT_S, "s3cret-token"), PseudonymsOnly())
        with pytest.raises(TargetUnavailable, match="SSL"):  # self-signed: not in system CAs
            untrusted.deliver([study_report()])
        trusted = FhirTarget(FhirClient(url, TIMEOUT_S, "s3cret-token", cafile=crt),
                             PseudonymsOnly())
        trusted.deliver([study_report()])
        assert fhir.count("DiagnosticReport") == 1
    finally:
        proxy.stop()
