"""Process settings: one frozen object built from the environment (prefix `MEDSTREAM_`).

Build it once in the entry point (`Settings()`) and pass it down; invalid values fail at
start-up with a pydantic `ValidationError` naming the variable. Each input kind's settings
nest under its name: `MEDSTREAM_SCAN__MAX_BATCH=8` sets `settings.scan.max_batch`. The flat
names from before (`MEDSTREAM_SCAN_MAX_BATCH`, `MEDSTREAM_TOPIC_SCANS`, ...: `LEGACY_NAMES`)
are still read, from the environment and as keyword arguments; the nested spelling wins.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from worker.lanes.settings import LaneSettings

MIB = 1024 * 1024


def _default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def host_port(address: str) -> tuple[str, int]:
    """Split "host:port" into (host, port); raises ValueError on a malformed address."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT, got {address!r}")
    return host, int(port)


class KindSettings(BaseModel):
    """One input kind's settings (`MEDSTREAM_<KIND>__<FIELD>`); defaults are per kind."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    topic: str = Field(min_length=1)  # the input topic
    model: str = Field(min_length=1)  # the Triton model that serves it
    # Batching (max_batch is further capped by the model's max_batch_size read from Triton)
    max_batch: int = Field(32, ge=1)
    within_s: float = Field(0.05, gt=0)
    # Batches served at once per agent (acks stay in offset order). 1 by default: with a slow
    # Triton (requests near the timeout) more batches in flight only add timed-out retries
    # (tests/chaos/test_triton_slow.py: 90 s to drain at 1, 225 s at 2/3 even with the adaptive
    # limit). Raise it for a Triton with headroom (GPU): +20-30% vitals throughput here
    # (docs/benchmarks.md).
    concurrency: int = Field(1, ge=1, le=16)
    max_bytes: int = Field(MIB, ge=256)  # input limit, checked before decoding (-> dead letter)
    # The kind's STAT lane (docs/lanes.md), served by the STAT process; None: routine only
    stat_topic: str | None = Field(None, min_length=1)


class ScanSettings(KindSettings):
    """Scans add the claim-check limits."""

    # Claim-check envelopes may only point below this folder; None refuses every `uri`
    uri_root: Path | None = None
    max_claimcheck_bytes: int = Field(512 * MIB, ge=1024)


class StudyRoute(BaseModel):
    """Completeness overrides for the studies one model answers (`MEDSTREAM_STUDIES__ROUTES`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    quiet_s: float | None = Field(None, gt=0)
    max_s: float | None = Field(None, gt=0)
    required_modalities: tuple[str, ...] = ()


class StudySettings(BaseModel):
    """Study results and vitals alerts (`MEDSTREAM_STUDIES__<FIELD>`, docs/studies.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Off by default until every harness that runs workers on its own topic set (bench, demo,
    # soak, test workers) names these topics too: the defaults below are shared names.
    enabled: bool = False
    topic: str = Field("studies", min_length=1)  # medstream.study/v1 results (compacted)
    alerts_topic: str = Field("alerts", min_length=1)  # medstream.alert/v1
    events_topic: str = Field("study-events", min_length=1)  # internal: outcomes by study
    risk_topic: str = Field("alert-events", min_length=1)  # internal: window risks by patient
    # Study completeness: quiet for quiet_s since the last instance (and since this worker took
    # the partition over), or forced max_s after the first instance / the last result
    quiet_s: float = Field(30.0, gt=0)
    max_s: float = Field(5400.0, gt=0)
    required_modalities: tuple[str, ...] = ()  # each must have a series before `quiet` counts
    routes: dict[str, StudyRoute] = {}  # model name -> overrides for studies it answers
    retain_s: float = Field(86400.0, gt=0)  # closed studies kept this long for amendments
    top_k: int = Field(5, ge=1, le=100)
    max_instances: int = Field(20000, ge=1)  # deduplicated per study; more are counted only
    clock_skew_s: float = Field(300.0, ge=0)  # event times further ahead are not trusted
    tick_s: float = Field(1.0, gt=0)  # how often timers are checked
    # Vitals alerts (hysteresis: raise at >= alert_threshold, clear below clear_threshold)
    alert_threshold: float = Field(0.5, gt=0, le=1)
    alert_consecutive: int = Field(3, ge=1)
    clear_threshold: float = Field(0.3, ge=0, le=1)
    clear_consecutive: int = Field(3, ge=1)
    alert_repeat_s: float = Field(300.0, gt=0)  # at most one `updated` per this much window time
    reorder_s: float = Field(2.0, ge=0)  # windows held this long to be applied in time order
    patient_idle_s: float = Field(3600.0, gt=0)  # no window for this long: state dropped

    @model_validator(mode="after")
    def _check_hysteresis(self) -> StudySettings:
        if self.clear_threshold >= self.alert_threshold:
            raise ValueError("clear_threshold must be below alert_threshold (hysteresis)")
        return self


class RoutingSettings(BaseModel):
    """Where the scan routing rules are (`MEDSTREAM_ROUTING__RULES`; docs/routing.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Relative paths resolve against the working directory; deployments mount the file next
    # to the models (docs/deployment.md)
    rules: Path = Path("triton_models/routing.yaml")


#: Flat names from before the kinds nested -> (kind, field); `Settings` still accepts them.
LEGACY_NAMES: dict[str, tuple[str, str]] = {
    "topic_scans": ("scan", "topic"), "scan_model": ("scan", "model"),
    "scan_max_batch": ("scan", "max_batch"), "scan_within_s": ("scan", "within_s"),
    "scan_concurrency": ("scan", "concurrency"), "max_scan_bytes": ("scan", "max_bytes"),
    "scan_uri_root": ("scan", "uri_root"), "max_claimcheck_bytes": ("scan", "max_claimcheck_bytes"),
    "topic_vitals": ("vitals", "topic"), "vitals_model": ("vitals", "model"),
    "vitals_max_batch": ("vitals", "max_batch"), "vitals_within_s": ("vitals", "within_s"),
    "vitals_concurrency": ("vitals", "concurrency"), "max_vitals_bytes": ("vitals", "max_bytes"),
}


def nest_legacy(flat: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{"scan_max_batch": 8} -> {"scan": {"max_batch": 8}} for the keys in LEGACY_NAMES."""
    nested: dict[str, dict[str, Any]] = {}
    for name, value in flat.items():
        if name in LEGACY_NAMES:
            kind, field = LEGACY_NAMES[name]
            nested.setdefault(kind, {})[field] = value
    return nested


class LegacyEnvSource(PydanticBaseSettingsSource):
    """The flat legacy variables (MEDSTREAM_SCAN_MAX_BATCH, ...) as nested values."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads the environment at once

    def __call__(self) -> dict[str, Any]:
        prefix = str(self.config.get("env_prefix", "")).lower()
        env = {k.lower(): v for k, v in os.environ.items()}
        return nest_legacy({n: env[prefix + n] for n in LEGACY_NAMES if prefix + n in env})


class Settings(BaseSettings):
    """Everything a medstream process reads from its environment."""

    # Secrets may also come from files named like the variables in lower case (Docker/Kubernetes
    # secrets), e.g. $MEDSTREAM_SECRETS_DIR/medstream_kafka_sasl_password; the environment wins.
    model_config = SettingsConfigDict(env_prefix="MEDSTREAM_", frozen=True, extra="ignore",
                                      env_nested_delimiter="__",
                                      nested_model_default_partial_update=True,
                                      secrets_dir=os.environ.get("MEDSTREAM_SECRETS_DIR"))

    # Input kinds (worker/kinds/): one nested block each, MEDSTREAM_<KIND>__<FIELD>
    scan: ScanSettings = ScanSettings(topic="scans", model="scan_cnn", max_batch=32,
                                      within_s=0.05, max_bytes=10 * MIB,
                                      stat_topic="scans.stat")
    vitals: KindSettings = KindSettings(topic="vitals", model="vitals_lstm", max_batch=64,
                                        within_s=0.02, max_bytes=MIB, stat_topic="vitals.stat")
    lanes: LaneSettings = LaneSettings()  # STAT lanes
    studies: StudySettings = StudySettings()  # study results and vitals alerts
    routing: RoutingSettings = RoutingSettings()  # which model serves each scan

    # Kafka
    kafka_bootstrap: str = "127.0.0.1:9092"
    topic_predictions: str = "predictions"
    topic_deadletter: str = "deadletter"
    topic_partitions: int = Field(4, ge=1, le=1024)
    max_message_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    app_id: str = "medstream-worker"
    broker_session_timeout_s: float = Field(6.0, gt=0)  # Tansu joins a group after half of it
    broker_commit_interval_s: float = Field(0.5, gt=0)  # small: fewer duplicates after a crash
    producer_max_request_size: int = Field(11 * 1024 * 1024, ge=1024)
    # How long the worker's consumer lets the broker hold a fetch (faust hard-codes 1500 ms;
    # a broker that does not answer early, like Tansu, delays each record by up to this)
    consumer_fetch_wait_ms: int = Field(50, ge=0, le=60_000)
    # aiokafka checks every fetched record's CRC32C in software (~0.3 ms per 0.5 MB, ~4.7 ms
    # per 7 MB record). Turn off only where the broker and TLS already guarantee integrity.
    consumer_check_crcs: bool = True
    # worker/streaming_patches.py: faust's per-message task fan-out skipped (off: faust as is)
    streaming_patches: bool = True

    # Kafka transport security (worker/security.py turns these into client arguments).
    # PLAINTEXT only on loopback; SSL or SASL_SSL wherever the broker is on a network.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None  # None: the system CA store
    kafka_ssl_certfile: Path | None = None  # client certificate (mutual TLS), with keyfile
    kafka_ssl_keyfile: Path | None = None
    kafka_ssl_key_password: SecretStr | None = None

    # Triton
    triton_grpc_url: str = "127.0.0.1:8001"
    triton_http_url: str = "127.0.0.1:8000"
    triton_metrics_url: str = "127.0.0.1:8002"
    triton_timeout_s: float = Field(10.0, gt=0)
    # A Triton loading or unloading a model answers not-ready for a moment (strict readiness),
    # and in a cluster it may start after the worker: wait this long before refusing to start.
    triton_ready_wait_s: float = Field(30.0, ge=0)
    triton_grpc_tls: bool = False  # TLS on the gRPC channel (worker/security.py)
    triton_grpc_cafile: Path | None = None  # None: the system CA store
    triton_grpc_certfile: Path | None = None  # client certificate (mutual TLS), with keyfile
    triton_grpc_keyfile: Path | None = None
    triton_max_inflight: int = Field(4, ge=1)  # concurrent requests per batch
    retry_initial_s: float = Field(0.2, gt=0)  # retryable errors: exponential backoff + jitter
    retry_max_s: float = Field(5.0, gt=0)
    breaker_threshold: int = Field(3, ge=1)  # consecutive failures that open the breaker
    breaker_probe_s: float = Field(0.5, gt=0)  # readiness probes while a breaker is open
    triton_reconnect_initial_s: float = Field(0.25, gt=0)  # gRPC's reconnect backoff: 1 s..120 s
    triton_reconnect_max_s: float = Field(1.0, gt=0)
    stop_deadline_s: float = Field(40.0, gt=0)  # a stop still running then exits at once (143)
    decode_threads: int = Field(2, ge=1)  # DICOM decoding off the event loop
    require_deidentified: bool = False  # scans must declare de-identification (not_deidentified)

    # Worker HTTP (metrics, health) - loopback by default
    web_host: str = "127.0.0.1"
    web_port: int = Field(6066, ge=1, le=65535)
    worker_id: str = Field(default_factory=_default_worker_id)

    # Local state (pid files, logs, faust data dir)
    state_dir: Path = Path(".medstream")

    @classmethod
    def settings_customise_sources(
            cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The legacy flat variables rank just below the environment's nested ones."""
        return (init_settings, env_settings, LegacyEnvSource(settings_cls), dotenv_settings,
                file_secret_settings)

    @model_validator(mode="before")
    @classmethod
    def _nest_legacy_arguments(cls, data: Any) -> Any:
        """Legacy flat keyword arguments (`Settings(scan_max_batch=8)`) set the nested field."""
        if not isinstance(data, dict) or not LEGACY_NAMES.keys() & data.keys():
            return data
        rest = {k: v for k, v in data.items() if k not in LEGACY_NAMES}
        for kind, values in nest_legacy(data).items():
            current = rest.get(kind, cls.model_fields[kind].default)  # sources drop defaults
            current = current.model_dump() if isinstance(current, BaseModel) else dict(current)
            rest[kind] = current | values
        return rest

    @field_validator("kafka_bootstrap")
    @classmethod
    def _check_bootstrap(cls, value: str) -> str:
        for part in value.split(","):
            host_port(part.strip())
        return value

    @field_validator("triton_grpc_url", "triton_http_url", "triton_metrics_url")
    @classmethod
    def _check_address(cls, value: str) -> str:
        host_port(value)
        return value

    @model_validator(mode="after")
    def _check_backoff(self) -> Settings:
        for low, high in (("retry_initial_s", "retry_max_s"),
                          ("triton_reconnect_initial_s", "triton_reconnect_max_s")):
            if getattr(self, high) < getattr(self, low):
                raise ValueError(f"{high} must be >= {low}")
        return self

    @model_validator(mode="after")
    def _check_security(self) -> Settings:
        if self.kafka_security_protocol.startswith("SASL_") and not (
                self.kafka_sasl_username and self.kafka_sasl_password):
            raise ValueError(f"{self.kafka_security_protocol} needs MEDSTREAM_KAFKA_SASL_USERNAME "
                             "and MEDSTREAM_KAFKA_SASL_PASSWORD")
        pairs = (("KAFKA_SSL", self.kafka_ssl_certfile, self.kafka_ssl_keyfile),
                 ("TRITON_GRPC", self.triton_grpc_certfile, self.triton_grpc_keyfile))
        for prefix, cert, key in pairs:
            if (cert is None) != (key is None):
                raise ValueError(f"set both MEDSTREAM_{prefix}_CERTFILE and MEDSTREAM_{prefix}_KEYFILE")
        files = (self.kafka_ssl_cafile, self.kafka_ssl_certfile, self.kafka_ssl_keyfile,
                 self.triton_grpc_cafile, self.triton_grpc_certfile, self.triton_grpc_keyfile)
        for path in files:
            if path is not None and not path.is_file():
                raise ValueError(f"TLS file {path} does not exist")
        return self
