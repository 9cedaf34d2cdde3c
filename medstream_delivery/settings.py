"""`medstream deliver` settings: the worker's `Settings` (Kafka, security) plus one block for
the delivery loop and one per target, nested like the kinds: `MEDSTREAM_FHIR__BASE_URL`,
`MEDSTREAM_MLLP__PORT`, `MEDSTREAM_PACS__CALLED_AE`, `MEDSTREAM_DELIVERY__IDENTITY_MAP`."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from worker.settings import Settings

_FROZEN = ConfigDict(frozen=True, extra="forbid")
TARGETS = ("fhir", "hl7", "sr")  # `medstream deliver TARGET`


class DeliveryOptions(BaseModel):
    """The delivery loop: topics, group, backoff, HTTP endpoint, re-identification."""

    model_config = _FROZEN

    studies_topic: str = Field("studies", min_length=1)
    alerts_topic: str = Field("alerts", min_length=1)
    deadletter_topic: str = Field("delivery-deadletter", min_length=1)
    group_prefix: str = Field("medstream-deliver", min_length=1)  # group = prefix-<target>
    retry_initial_s: float = Field(0.5, gt=0)
    retry_max_s: float = Field(30.0, gt=0)
    timeout_s: float = Field(10.0, gt=0)  # every call to a target
    web_host: str = "127.0.0.1"
    web_port: int = Field(6070, ge=0, le=65535)  # 0: any free port (tests)
    # Re-identification (docs/delivery.md): None delivers pseudonyms only
    identity_map: Path | None = None
    patient_system: str | None = None  # FHIR Identifier.system of the MRNs in the map
    patient_authority: str = Field("HOSP", min_length=1)  # HL7 PID-3.4 of those MRNs

    @model_validator(mode="after")
    def _check(self) -> DeliveryOptions:
        if self.retry_max_s < self.retry_initial_s:
            raise ValueError("MEDSTREAM_DELIVERY__RETRY_MAX_S must be >= RETRY_INITIAL_S")
        if self.identity_map is not None and not self.patient_system:
            raise ValueError("MEDSTREAM_DELIVERY__IDENTITY_MAP needs "
                             "MEDSTREAM_DELIVERY__PATIENT_SYSTEM (the MRN system URI)")
        return self


class FhirSettings(BaseModel):
    """The FHIR server: transaction endpoint (the base URL) and credentials."""

    model_config = _FROZEN

    base_url: str | None = None  # required by `medstream deliver fhir`
    bearer_token: SecretStr | None = None
    cafile: Path | None = None  # None: system CAs
    certfile: Path | None = None  # mutual TLS, with keyfile
    keyfile: Path | None = None

    @model_validator(mode="after")
    def _check(self) -> FhirSettings:
        if self.base_url is not None and not self.base_url.startswith(("http://", "https://")):
            raise ValueError("MEDSTREAM_FHIR__BASE_URL must be an http(s) URL")
        if (self.certfile is None) != (self.keyfile is None):
            raise ValueError("set both MEDSTREAM_FHIR__CERTFILE and MEDSTREAM_FHIR__KEYFILE")
        return self


class MllpSettings(BaseModel):
    """The interface engine's MLLP listener and the MSH sender/receiver names."""

    model_config = _FROZEN

    host: str = "127.0.0.1"
    port: int = Field(2576, ge=1, le=65535)
    sending_application: str = "MEDSTREAM"
    sending_facility: str = ""
    receiving_application: str = ""
    receiving_facility: str = ""


class PacsSettings(BaseModel):
    """The PACS storage SCP that receives the SR instances."""

    model_config = _FROZEN

    host: str = "127.0.0.1"
    port: int = Field(11113, ge=1, le=65535)
    called_ae: str = Field("PACS", min_length=1, max_length=16)
    calling_ae: str = Field("MEDSTREAM_SR", min_length=1, max_length=16)


class DeliverySettings(Settings):
    """Everything `medstream deliver ...` reads from the environment."""

    delivery: DeliveryOptions = DeliveryOptions()
    fhir: FhirSettings = FhirSettings()
    mllp: MllpSettings = MllpSettings()
    pacs: PacsSettings = PacsSettings()
