"""Transport security from Settings: Kafka TLS/SASL arguments per client library, Triton gRPC TLS.

One place turns the MEDSTREAM_KAFKA_SECURITY_PROTOCOL / _SASL_* / _SSL_* settings into what
each Kafka client expects (faust, aiokafka, kafka-python), so the worker, the producers and
the tools cannot drift apart. Secrets stay SecretStr until handed to the client library and
are never logged. TLS contexts verify the peer (system CAs unless a CA file is given).
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any, Literal

from worker.settings import Settings

KafkaClient = Literal["faust", "aiokafka", "kafka-python"]


def tls_context(cafile: Path | None, certfile: Path | None = None, keyfile: Path | None = None,
                key_password: str | None = None) -> ssl.SSLContext:
    """A client TLS context that verifies the server (and presents a client cert if given)."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH,
                                         cafile=str(cafile) if cafile else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if certfile is not None:
        context.load_cert_chain(str(certfile), str(keyfile) if keyfile else None, key_password)
    return context


def _kafka_tls(settings: Settings) -> ssl.SSLContext | None:
    if not settings.kafka_security_protocol.endswith("SSL"):
        return None
    password = settings.kafka_ssl_key_password
    return tls_context(settings.kafka_ssl_cafile, settings.kafka_ssl_certfile,
                       settings.kafka_ssl_keyfile, password.get_secret_value() if password else None)


def kafka_security(settings: Settings, client: KafkaClient) -> dict[str, Any]:
    """Keyword arguments that secure a Kafka client: faust.App(**...), AIOKafka*(**...) or
    kafka-python's KafkaProducer/KafkaConsumer/KafkaAdminClient(**...)."""
    protocol = settings.kafka_security_protocol
    context = _kafka_tls(settings)
    sasl = protocol.startswith("SASL_")
    password = settings.kafka_sasl_password.get_secret_value() if sasl and settings.kafka_sasl_password else None
    if client == "faust":
        from faust.auth import SASLCredentials, SSLCredentials

        if sasl:
            return {"broker_credentials": SASLCredentials(
                username=settings.kafka_sasl_username, password=password, ssl_context=context,
                mechanism=settings.kafka_sasl_mechanism)}
        return {"broker_credentials": SSLCredentials(context)} if context else {}
    kwargs: dict[str, Any] = {"security_protocol": protocol}
    if context is not None:
        kwargs["ssl_context"] = context
    if sasl:
        kwargs.update(sasl_mechanism=settings.kafka_sasl_mechanism,
                      sasl_plain_username=settings.kafka_sasl_username,
                      sasl_plain_password=password)
    return kwargs


def triton_grpc_security(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for tritonclient.grpc(.aio).InferenceServerClient: TLS when enabled
    (the client reads the PEM files itself, so these are paths)."""
    if not settings.triton_grpc_tls:
        return {}

    def path(value: Path | None) -> str | None:
        return str(value) if value is not None else None

    return {"ssl": True, "root_certificates": path(settings.triton_grpc_cafile),
            "private_key": path(settings.triton_grpc_keyfile),
            "certificate_chain": path(settings.triton_grpc_certfile)}
