"""The worker end to end over TLS on both hops: Kafka (SSL) and Triton gRPC (TLS).

A real Triton serves gRPC with `--grpc-use-ssl` and a self-signed certificate; Tansu sits
behind a TLS-terminating proxy that it advertises (tests/support/tls_proxy.py says why). The worker, the
test's producer and its readers are configured only through MEDSTREAM_* security settings
(worker/security.py); plaintext clients must fail against both endpoints.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from chaos_stack import KAFKA_PORT, STATE_DIR, TRITON_PORT, make_scenario
from kafka import KafkaAdminClient, KafkaProducer
from kafka.errors import KafkaError

from medstream_tools.localstack import broker as local_broker
from medstream_tools.localstack import triton as local_triton
from medstream_tools.localstack.process import Service, StackError, port_open, wait_until
from medstream_tools.localstack.stack import StackConfig
from medstream_tools.soak.accounting import assert_no_loss, report, settle
from medstream_tools.soak.load import ScanFactory, poison_event, vitals_event
from tests.support.tls_proxy import TlsProxy
from worker.security import kafka_security

pytestmark = pytest.mark.chaos

STATE = STATE_DIR / "tls"
BROKER_PORT, PROXY_PORT = KAFKA_PORT + 2, KAFKA_PORT + 3
HTTP, GRPC, METRICS = TRITON_PORT + 3, TRITON_PORT + 4, TRITON_PORT + 5


@dataclass(frozen=True)
class TlsStack:
    cfg: StackConfig
    cert: Path


def self_signed(folder: Path) -> tuple[Path, Path]:
    crt, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(key), "-out", str(crt), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return crt, key


def start_broker(state: Path) -> Service:
    """Plaintext Tansu that advertises the TLS proxy's address."""
    plan = local_broker.plan("tansu", "127.0.0.1", BROKER_PORT, state)
    argv = list(plan.argv)
    argv[argv.index("--advertised-listener-url") + 1] = f"tcp://127.0.0.1:{PROXY_PORT}"
    svc = Service("broker", state)
    pid = svc.start(argv, plan.env, cwd=state)
    wait_until(svc, pid, lambda: port_open("127.0.0.1", BROKER_PORT), 30, "its port")
    return svc


def start_triton(state: Path, crt: Path, key: Path) -> Service:
    """Triton with gRPC over TLS (HTTP stays plaintext on loopback, for readiness only)."""
    repo = state / "models"
    repo.mkdir()
    for model in ("scan_cnn", "vitals_lstm"):
        (repo / model).symlink_to(local_triton.ROOT / "triton_models" / model)
    plan = local_triton.plan("127.0.0.1", HTTP, GRPC, METRICS, repo, state)
    argv = [*plan.argv, "--grpc-use-ssl=true", f"--grpc-server-cert={crt}", f"--grpc-server-key={key}"]
    svc = Service("triton", state)
    pid = svc.start(argv, plan.env, cwd=state)
    wait_until(svc, pid, lambda: local_triton.ready("127.0.0.1", HTTP, plan.models), 180,
               "readiness of every model")
    return svc


@pytest.fixture(scope="module")
def tls_stack() -> Iterator[TlsStack]:
    shutil.rmtree(STATE, ignore_errors=True)
    STATE.mkdir(parents=True)
    crt, key = self_signed(STATE)
    services: list[Service] = []
    proxy = TlsProxy(PROXY_PORT, BROKER_PORT, crt, key)
    try:
        services.append(start_broker(STATE))
        proxy.start()
        services.append(start_triton(STATE, crt, key))
        cfg = StackConfig(state_dir=STATE, broker_kind="tansu", kafka_host="127.0.0.1",
                          kafka_port=PROXY_PORT, triton_host="127.0.0.1", http_port=HTTP,
                          grpc_port=GRPC, metrics_port=METRICS)
        yield TlsStack(cfg, crt)
    except StackError as exc:
        pytest.fail(f"the TLS stack did not come up: {exc}", pytrace=False)
    finally:
        proxy.stop()
        for svc in reversed(services):
            svc.stop()


def test_plaintext_clients_are_refused_by_both_tls_endpoints(tls_stack: TlsStack) -> None:
    with pytest.raises(KafkaError):
        KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{PROXY_PORT}", request_timeout_ms=3000,
                         bootstrap_timeout_ms=3000).list_topics()
    plain = grpcclient.InferenceServerClient(f"127.0.0.1:{GRPC}")
    with pytest.raises(Exception, match="(?i)unavailable|ssl|handshake|socket closed|connect"):
        plain.is_server_live(client_timeout=5)
    secure = grpcclient.InferenceServerClient(f"127.0.0.1:{GRPC}", ssl=True,
                                              root_certificates=str(tls_stack.cert))
    assert secure.is_server_live(client_timeout=10)


def test_worker_serves_end_to_end_over_tls(tls_stack: TlsStack, request) -> None:
    crt = str(tls_stack.cert)
    sc = make_scenario("tls", f"127.0.0.1:{PROXY_PORT}", tls_stack.cfg,
                       KAFKA_SECURITY_PROTOCOL="SSL", KAFKA_SSL_CAFILE=crt,
                       TRITON_GRPC_TLS="true", TRITON_GRPC_CAFILE=crt)
    request.addfinalizer(sc.stop_workers)
    security = kafka_security(sc.settings, "kafka-python")
    worker = sc.worker(5).start()
    try:
        worker.wait_ready(180)
        producer = KafkaProducer(bootstrap_servers=sc.settings.kafka_bootstrap, acks="all", **security)
        rng, scans, inputs, futures = np.random.default_rng(3), ScanFactory(), {}, []
        events = [("vitals", vitals_event(rng, i)) for i in range(30)]
        events += [("scan", scans.event(i)) for i in range(6)]
        events += [(kind, poison_event(kind, scans, rng)) for kind in ("vitals", "scan")]
        for kind, (event_id, key, value) in events:
            topic = sc.settings.scan.topic if kind == "scan" else sc.settings.vitals.topic
            futures.append(producer.send(topic, key=key, value=value))
            inputs[event_id] = kind
        producer.flush()
        assert all(f.succeeded() for f in futures)
        producer.close()
        counts = settle(sc.name, sc.settings.kafka_bootstrap, sc.outputs, inputs, timeout_s=120,
                        security=security, kafka="SSL", triton_grpc="TLS")
    finally:
        worker.stop()
    report(counts, sc.state_dir.parent)
    assert_no_loss(counts)
