"""docker-compose.yml: valid against the Compose Specification schema and consistent with the code.

No Docker engine or compose plugin exists here, so the file is checked against the compose-spec
JSON schema vendored by `check-jsonschema` (the schema `docker compose config` uses).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
import yaml
from pydantic import BaseModel

from medstream_delivery.settings import DeliverySettings
from producers.settings import ProducerSettings
from worker.kinds import KINDS, default_models
from worker.settings import LEGACY_NAMES, Settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_file_matches_the_compose_spec(compose: dict) -> None:
    schema_file = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(schema_file.read_text())
    validator = jsonschema.Draft7Validator(schema)  # the spec says draft-07 (URL without "#")
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in validator.iter_errors(compose)]
    assert errors == []


def is_setting(variable: str) -> bool:
    """MEDSTREAM_X is a field, MEDSTREAM_KIND__FIELD a field of a kind's block, or a legacy name."""
    name = variable.removeprefix("MEDSTREAM_").lower()
    fields = {**ProducerSettings.model_fields, **DeliverySettings.model_fields}  # both extend Settings
    block, _, field = name.partition("__")
    if field:
        annotation = fields[block].annotation if block in fields else None
        return isinstance(annotation, type) and issubclass(annotation, BaseModel) \
            and field in annotation.model_fields
    return name in fields or name in LEGACY_NAMES


def test_the_setting_check_knows_nested_and_legacy_names() -> None:
    assert is_setting("MEDSTREAM_SCAN__MAX_BATCH") and is_setting("MEDSTREAM_VITALS__TOPIC")
    assert is_setting("MEDSTREAM_SCAN_MAX_BATCH") and is_setting("MEDSTREAM_KAFKA_BOOTSTRAP")
    assert not is_setting("MEDSTREAM_SCAN__NOPE") and not is_setting("MEDSTREAM_KAFKA__X")
    assert is_setting("MEDSTREAM_FHIR__BASE_URL") and is_setting("MEDSTREAM_DELIVERY__WEB_PORT")


def test_every_medstream_variable_is_a_settings_field(compose: dict) -> None:
    used = {
        name
        for service in compose["services"].values()
        for name in (service.get("environment") or {})
        if name.startswith("MEDSTREAM_")
    }
    assert used, "compose sets no MEDSTREAM_* variable"
    assert sorted(n for n in used if not is_setting(n)) == []


def test_mounted_host_paths_exist(compose: dict) -> None:
    sources = [
        volume.split(":", 1)[0]
        for service in compose["services"].values()
        for volume in service.get("volumes", [])
        if volume.startswith("./")
    ]
    assert "./triton_models" in sources
    assert sorted(s for s in sources if not (ROOT / s).exists()) == []


def shipped_models() -> set[str]:
    """Models of triton_models/ that the repository ships (not those `models build` generates,
    which triton_models/.gitignore lists)."""
    generated = {line.strip().strip("/") for line in
                 (ROOT / "triton_models" / ".gitignore").read_text().splitlines()}
    return {p.parent.name for p in (ROOT / "triton_models").glob("*/config.pbtxt")} - generated


def served_models() -> set[str]:
    """What a deployment's Triton must load: the shipped models and every model the shipped
    routing rules route to (the imported ones are built into the model volume by
    `medstream models build`, docs/deployment.md)."""
    settings = Settings(_env_file=None, routing={"rules": ROOT / "triton_models" / "routing.yaml"})
    return shipped_models() | {m for spec in KINDS for m in spec.models(settings)}


def test_triton_loads_every_model_of_the_repository_and_the_rules(compose: dict) -> None:
    command = compose["services"]["triton"]["command"]
    loaded = {arg.split("=", 1)[1] for arg in command if arg.startswith("--load-model=")}
    assert "--model-control-mode=explicit" in command
    assert loaded == served_models()


def test_triton_loads_the_models_of_the_registered_kinds(compose: dict) -> None:
    command = compose["services"]["triton"]["command"]
    loaded = {arg.split("=", 1)[1] for arg in command if arg.startswith("--load-model=")}
    assert set(default_models()) <= loaded


def test_prometheus_scrape_targets_are_compose_services(compose: dict) -> None:
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    hosts = {
        target.split(":", 1)[0]
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    } | {name for job in config["scrape_configs"]
         for sd in job.get("dns_sd_configs", []) for name in sd["names"]}
    assert sorted(hosts - set(compose["services"])) == []


def test_medstream_commands_parse(compose: dict) -> None:
    """Every `medstream ...` command line in the file is one the CLI accepts."""
    from worker.cli import build_parser

    parser = build_parser()
    commands = [s["command"] for s in compose["services"].values()
                if isinstance(s.get("command"), list) and s["command"][0] == "medstream"]
    assert len(commands) >= 5
    for command in commands:
        assert callable(parser.parse_args(command[1:]).func), command


def test_studies_are_on_and_each_delivery_target_runs_with_probes(compose: dict) -> None:
    services = compose["services"]
    assert services["worker"]["environment"]["MEDSTREAM_STUDIES__ENABLED"] == "true"
    assert services["topics"]["environment"]["MEDSTREAM_STUDIES__ENABLED"] == "true"
    for target in ("fhir", "hl7", "sr"):
        service = services[f"deliver-{target}"]
        assert service["command"] == ["medstream", "deliver", target]
        env = service["environment"]
        assert (env["MEDSTREAM_DELIVERY__WEB_HOST"], env["MEDSTREAM_DELIVERY__WEB_PORT"]) == (
            "0.0.0.0", "6070")
        assert "127.0.0.1:6070/health" in " ".join(service["healthcheck"]["test"])
    secret = services["deliver-fhir"]["environment"]["MEDSTREAM_FHIR__BEARER_TOKEN"]
    assert secret.startswith("${")  # a reference to the host's environment, never a value
