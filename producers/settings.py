"""Producer/receiver settings: the worker's `Settings` plus the edge-only fields.

Built once in the entry point from the environment (prefix `MEDSTREAM_`) and passed down.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator

from worker.errors import ConfigurationError
from worker.settings import Settings


class ProducerSettings(Settings):
    """Everything `medstream produce ...` and `medstream receive ...` read from the environment."""

    # De-identification at the edge (on by default; the key is required while it is on)
    deid: bool = True
    pseudonym_key: SecretStr | None = None

    # Kafka producer behaviour
    producer_bootstrap_timeout_s: float = Field(10.0, gt=0)
    producer_delivery_timeout_s: float = Field(30.0, gt=0)
    producer_retries: int = Field(5, ge=0, le=100)

    # Claim-check store for scans larger than the broker's message limit (a local folder)
    claim_check_dir: Path = Path(".medstream/claim-check")

    # STAT lanes (docs/lanes.md): auto = from the event's priority and MEDSTREAM_LANES__STAT_RULES
    priority: Literal["auto", "stat", "routine"] = "auto"

    # DICOM C-STORE SCP
    dicom_host: str = "127.0.0.1"
    dicom_port: int = Field(11112, ge=1, le=65535)
    dicom_ae_title: str = Field("MEDSTREAM", min_length=1, max_length=16)

    # HL7 v2 MLLP listener
    hl7_host: str = "127.0.0.1"
    hl7_port: int = Field(2575, ge=1, le=65535)
    hl7_interval_s: float = Field(60.0, gt=0)  # grid of HL7 windows: monitors chart per minute
    hl7_timezone: str = "UTC"  # IANA zone of HL7 times sent without an offset (e.g. Europe/Berlin)

    # Vital-sign windows (shared by `produce vitals` and `receive hl7`)
    window_len: int = Field(60, ge=1, le=10_000)
    window_hop: int = Field(30, ge=1, le=10_000)
    interval_s: float = Field(1.0, gt=0)

    # Prometheus metrics, one port per process kind, loopback by default
    metrics_host: str = "127.0.0.1"
    dicom_metrics_port: int = Field(9110, ge=0, le=65535)
    hl7_metrics_port: int = Field(9111, ge=0, le=65535)
    produce_metrics_port: int = Field(9112, ge=0, le=65535)

    @model_validator(mode="after")
    def _check_key(self) -> ProducerSettings:
        key = self.pseudonym_key
        if self.deid and key is not None and len(key.get_secret_value()) < 16:
            raise ValueError("MEDSTREAM_PSEUDONYM_KEY must be at least 16 characters")
        return self

    @field_validator("hl7_timezone")
    @classmethod
    def _check_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"MEDSTREAM_HL7_TIMEZONE: unknown time zone {value!r}") from exc
        return value

    def require_key(self) -> bytes:
        """The pseudonym key as bytes; ConfigurationError when de-id is on without one."""
        if self.pseudonym_key is None:
            raise ConfigurationError(
                "de-identification is on but MEDSTREAM_PSEUDONYM_KEY is not set: set a secret of "
                "at least 16 characters (or MEDSTREAM_DEID=false to publish identifiers, not "
                "advised)"
            )
        return self.pseudonym_key.get_secret_value().encode("utf-8")
