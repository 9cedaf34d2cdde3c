"""`medstream deliver` settings, target wiring and start-up failures (one clear line, exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest
from delivery_samples import identity_map, study_report
from pydantic import ValidationError

from medstream_delivery.cli import _command
from medstream_delivery.identity import IdentityMap, PseudonymsOnly, Unmapped
from medstream_delivery.run import resolver_for, target_for
from medstream_delivery.settings import DeliverySettings
from medstream_delivery.targets import FhirTarget, Hl7Target, SrTarget
from worker.errors import ConfigurationError


def test_nested_variables_and_loopback_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDSTREAM_FHIR__BASE_URL", "https://fhir.example/r4")
    monkeypatch.setenv("MEDSTREAM_FHIR__BEARER_TOKEN", "s3cret")
    monkeypatch.setenv("MEDSTREAM_PACS__CALLED_AE", "ARCHIVE")
    settings = DeliverySettings(_env_file=None)
    assert settings.fhir.base_url == "https://fhir.example/r4"
    assert "s3cret" not in repr(settings)
    assert settings.pacs.called_ae == "ARCHIVE"
    assert {settings.delivery.web_host, settings.mllp.host, settings.pacs.host} == {"127.0.0.1"}


@pytest.mark.parametrize(("block", "values", "message"), [
    ("fhir", {"base_url": "ftp://x"}, r"http\(s\) URL"),
    ("fhir", {"certfile": "/etc/hostname"}, "KEYFILE"),
    ("delivery", {"identity_map": "/tmp/ids.sqlite"}, "PATIENT_SYSTEM"),
    ("delivery", {"retry_initial_s": 5, "retry_max_s": 1}, "RETRY_MAX_S"),
])
def test_invalid_settings_name_the_variable(block: str, values: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        DeliverySettings(_env_file=None, **{block: values})


def test_each_target_from_its_block() -> None:
    settings = DeliverySettings(_env_file=None, fhir={"base_url": "http://127.0.0.1:1/"})
    resolver = PseudonymsOnly()
    assert isinstance(target_for("fhir", settings, resolver), FhirTarget)
    assert isinstance(target_for("hl7", settings, resolver), Hl7Target)
    assert isinstance(target_for("sr", settings, resolver), SrTarget)
    with pytest.raises(ConfigurationError, match="BASE_URL"):
        target_for("fhir", DeliverySettings(_env_file=None), resolver)


def test_resolver_is_pseudonyms_only_unless_a_map_is_set(tmp_path: Path) -> None:
    assert isinstance(resolver_for(DeliverySettings(_env_file=None)), PseudonymsOnly)
    identity_map(tmp_path / "ids.sqlite").close()
    settings = DeliverySettings(_env_file=None, delivery={
        "identity_map": tmp_path / "ids.sqlite", "patient_system": "urn:oid:1.2.3"})
    resolver = resolver_for(settings)
    assert isinstance(resolver, IdentityMap)
    assert resolver.patient(study_report().patient).value == "MRN-4711"
    with pytest.raises(Unmapped):
        resolver.uid("2.25.404")


def test_the_identity_map_is_private_and_read_only(tmp_path: Path) -> None:
    resolver = identity_map(tmp_path / "ids.sqlite")
    assert (tmp_path / "ids.sqlite").stat().st_mode & 0o077 == 0
    with pytest.raises(Exception, match="readonly"):
        resolver._db.execute("DELETE FROM identities")


def test_start_up_failures_are_one_line_and_exit_2(monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    class Args:
        target, limit = "fhir", None

    monkeypatch.delenv("MEDSTREAM_FHIR__BASE_URL", raising=False)
    assert _command(Args()) == 2  # type: ignore[arg-type]
    assert "MEDSTREAM_FHIR__BASE_URL" in capsys.readouterr().err
    monkeypatch.setenv("MEDSTREAM_DELIVERY__IDENTITY_MAP", "/nonexistent/ids.sqlite")
    monkeypatch.setenv("MEDSTREAM_DELIVERY__PATIENT_SYSTEM", "urn:oid:1.2.3")
    assert _command(Args()) == 2  # type: ignore[arg-type]
    assert "does not exist" in capsys.readouterr().err
