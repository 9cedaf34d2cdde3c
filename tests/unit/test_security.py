"""worker.security + the security settings: Kafka TLS/SASL arguments per client, Triton gRPC TLS."""

from __future__ import annotations

import re
import ssl
import subprocess
from pathlib import Path

import pytest
from faust.auth import SASLCredentials, SSLCredentials
from faust.types.auth import AuthProtocol
from pydantic import ValidationError

from worker.security import kafka_security, triton_grpc_security
from worker.settings import Settings


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate and its key for 127.0.0.1 (openssl)."""
    folder = tmp_path_factory.mktemp("tls")
    crt, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(key), "-out", str(crt), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return crt, key


def make(**values: object) -> Settings:
    return Settings(_env_file=None, **values)


def test_plaintext_by_default_for_every_client() -> None:
    settings = make()
    assert kafka_security(settings, "kafka-python") == {"security_protocol": "PLAINTEXT"}
    assert kafka_security(settings, "aiokafka") == {"security_protocol": "PLAINTEXT"}
    assert kafka_security(settings, "faust") == {}
    assert triton_grpc_security(settings) == {}


def test_sasl_ssl_scram_gives_a_verifying_context_and_credentials(cert) -> None:
    crt, _ = cert
    settings = make(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-256",
                    kafka_sasl_username="worker", kafka_sasl_password="s3cret-pass",
                    kafka_ssl_cafile=crt)
    kwargs = kafka_security(settings, "kafka-python")
    context = kwargs.pop("ssl_context")
    assert kwargs == {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-256",
                      "sasl_plain_username": "worker", "sasl_plain_password": "s3cret-pass"}
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    creds = kafka_security(settings, "faust")["broker_credentials"]
    assert isinstance(creds, SASLCredentials)
    assert creds.protocol == AuthProtocol.SASL_SSL and creds.mechanism.value == "SCRAM-SHA-256"
    assert creds.username == "worker" and creds.password == "s3cret-pass"


def test_sasl_plaintext_has_no_tls_and_ssl_alone_has_no_sasl(cert) -> None:
    plain = make(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_mechanism="PLAIN",
                 kafka_sasl_username="u", kafka_sasl_password="p")
    assert "ssl_context" not in kafka_security(plain, "aiokafka")
    assert kafka_security(plain, "faust")["broker_credentials"].protocol == AuthProtocol.SASL_PLAINTEXT
    crt, key = cert
    tls = make(kafka_security_protocol="SSL", kafka_ssl_cafile=crt, kafka_ssl_certfile=crt,
               kafka_ssl_keyfile=key)
    kwargs = kafka_security(tls, "aiokafka")
    assert set(kwargs) == {"security_protocol", "ssl_context"}
    assert isinstance(kafka_security(tls, "faust")["broker_credentials"], SSLCredentials)


def test_secrets_never_appear_in_repr_or_str() -> None:
    settings = make(kafka_security_protocol="SASL_SSL", kafka_sasl_username="u",
                    kafka_sasl_password="do-not-print-me")
    assert "do-not-print-me" not in repr(settings) and "do-not-print-me" not in str(settings)


@pytest.mark.parametrize("values, message", [
    ({"kafka_security_protocol": "SASL_SSL"}, "MEDSTREAM_KAFKA_SASL_USERNAME"),
    ({"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_username": "u"}, "PASSWORD"),
    ({"kafka_ssl_certfile": "/etc/hostname"}, "MEDSTREAM_KAFKA_SSL_KEYFILE"),
    ({"triton_grpc_tls": True, "triton_grpc_cafile": "/no/such/ca.pem"}, "does not exist"),
    ({"kafka_security_protocol": "SSL_MAYBE"}, "kafka_security_protocol"),
    ({"kafka_sasl_mechanism": "GSSAPI"}, "kafka_sasl_mechanism"),
])
def test_incomplete_security_settings_fail_at_start_up(values: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        make(**values)


def test_triton_grpc_tls_names_the_pem_files(cert) -> None:
    crt, key = cert
    options = triton_grpc_security(make(triton_grpc_tls=True, triton_grpc_cafile=crt,
                                        triton_grpc_certfile=crt, triton_grpc_keyfile=key))
    assert options == {"ssl": True, "root_certificates": str(crt), "private_key": str(key),
                       "certificate_chain": str(crt)}
    assert triton_grpc_security(make(triton_grpc_tls=True)) == {
        "ssl": True, "root_certificates": None, "private_key": None, "certificate_chain": None}


ROOT = Path(__file__).resolve().parents[2]


def test_no_pickle_on_any_code_path() -> None:
    """No module of the worker, producers, models or bench can (un)pickle anything."""
    hits = []
    for package in ("worker", "producers", "medstream_delivery", "medstream_tools", "medstream_training"):
        for path in (ROOT / package).rglob("*.py"):
            text = path.read_text()
            unsafe_torch = [c for c in re.findall(r"torch\.load\([^)]*\)", text)
                            if "weights_only=True" not in c]  # weights_only: no arbitrary objects
            if ("import pickle" in text or "allow_pickle=True" in text or unsafe_torch
                    or 'serializer="pickle"' in text):
                hits.append(str(path.relative_to(ROOT)))
    assert not hits, f"pickle reachable from {hits}"


def test_every_listener_defaults_to_loopback() -> None:
    from producers.settings import ProducerSettings

    settings = ProducerSettings(_env_file=None)
    hosts = {name: getattr(settings, name) for name in type(settings).model_fields
             if name.endswith("_host")}
    assert hosts and set(hosts.values()) == {"127.0.0.1"}, hosts
    addresses = (settings.kafka_bootstrap, settings.triton_grpc_url, settings.triton_http_url,
                 settings.triton_metrics_url)
    assert all(a.startswith("127.0.0.1:") for a in addresses)


def test_secrets_can_come_from_files(tmp_path: Path) -> None:
    """MEDSTREAM_SECRETS_DIR (here `_secrets_dir`): one file per variable, as Docker secrets."""
    (tmp_path / "medstream_kafka_sasl_password").write_text("from-a-file\n")
    settings = Settings(_env_file=None, _secrets_dir=tmp_path, kafka_security_protocol="SASL_SSL",
                        kafka_sasl_username="worker")
    assert kafka_security(settings, "kafka-python")["sasl_plain_password"] == "from-a-file"
