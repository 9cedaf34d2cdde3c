"""deploy/kubernetes: every kustomization builds offline, validates, and agrees with the code.

Each kustomization is rendered offline (tests/unit/kustomize_render.py). Core kinds are checked
against the Kubernetes schemas shipped by `kubernetes-validate` (strict: unknown fields fail),
the CRD kinds (KEDA, Prometheus Operator) against the schema subsets in data/crds/.
"""

from __future__ import annotations

import jsonschema
import kubernetes_validate
import pytest
from kustomize_render import (
    CRD_SCHEMAS,
    KUBE,
    KUBERNETES_VERSION,
    KUSTOMIZATIONS,
    QUANTITY,
    Resource,
    container_settings,
    containers,
    medstream_containers,
    one,
    render,
)
from runtime_cli import assert_runtime_command
from test_compose import is_setting, served_models

from producers.settings import ProducerSettings
from worker.kinds import KINDS


@pytest.fixture(scope="module", params=KUSTOMIZATIONS)
def rendered(request: pytest.FixtureRequest) -> list[Resource]:
    return render(KUBE / request.param)


def test_kustomizations_are_all_tested() -> None:
    found = {str(p.parent.relative_to(KUBE)) for p in KUBE.rglob("kustomization.yaml")}
    assert found == set(KUSTOMIZATIONS)


def test_core_kinds_validate_against_the_kubernetes_schemas(rendered: list[Resource]) -> None:
    core = [r for r in rendered if "." not in r["apiVersion"].split("/")[0]
            or r["apiVersion"].startswith(("apps/", "batch/", "policy/"))]
    assert {"Deployment", "Service", "ConfigMap", "PodDisruptionBudget"} <= {r["kind"] for r in core}
    for resource in core:
        kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)


def test_custom_resources_validate_against_their_crd_schemas(rendered: list[Resource]) -> None:
    custom = [r for r in rendered if "." in r["apiVersion"].split("/")[0]]
    assert {"ScaledObject", "ServiceMonitor"} <= {r["kind"] for r in custom}
    for resource in custom:
        group, version = resource["apiVersion"].split("/")
        schema = CRD_SCHEMAS[(group, version, resource["kind"])]
        errors = [f"{resource['kind']}/{'/'.join(map(str, e.absolute_path))}: {e.message}"
                  for e in jsonschema.Draft7Validator(schema).iter_errors(resource)]
        assert errors == []


def test_every_container_has_requests_and_limits(rendered: list[Resource]) -> None:
    for container in containers(rendered):
        resources = container["resources"]
        assert {"requests", "limits"} <= set(resources), container["name"]
        for value in (*resources["requests"].values(), *resources["limits"].values()):
            assert QUANTITY.match(str(value)), f"{container['name']}: {value!r}"


def test_every_medstream_variable_is_a_settings_field(rendered: list[Resource]) -> None:
    used = set(one(rendered, "ConfigMap", "medstream-settings")["data"]) | set(
        one(rendered, "ConfigMap", "medstream-delivery")["data"]) | {
        var["name"] for c in containers(rendered) for var in c.get("env", [])}
    assert all(name.startswith("MEDSTREAM_") for name in used)
    assert sorted(n for n in used if not is_setting(n)) == []


def test_every_container_starts_with_valid_settings(rendered: list[Resource]) -> None:
    for container in medstream_containers(rendered):
        container_settings(rendered, container)  # raises on an invalid value


def test_containers_run_runtime_commands_of_the_image(rendered: list[Resource]) -> None:
    served = medstream_containers(rendered)
    assert {tuple(c["command"]) for c in served} == {
        ("medstream", "worker"), ("medstream", "topics"),
        ("medstream", "receive", "dicom"), ("medstream", "receive", "hl7"),
        *(("medstream", "deliver", target) for target in ("fhir", "hl7", "sr"))}
    for container in served:
        assert_runtime_command(container["command"])
        assert container["image"].split(":")[0].endswith("medstream")


def test_no_literal_secrets(rendered: list[Resource]) -> None:
    assert "Secret" not in {r["kind"] for r in rendered}
    secret_fields = {name for name, field in ProducerSettings.model_fields.items()
                     if "SecretStr" in str(field.annotation)} | {"fhir__bearer_token"}
    for container in containers(rendered):
        for var in container.get("env", []):
            if var["name"].removeprefix("MEDSTREAM_").lower() in secret_fields:
                assert "secretKeyRef" in var.get("valueFrom", {}), var["name"]


def test_worker_probes_and_grace_period(rendered: list[Resource]) -> None:
    worker = one(rendered, "Deployment", "medstream-worker")
    pod = worker["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    settings = container_settings(rendered, container)
    assert "replicas" not in worker["spec"], "KEDA owns the worker's replica count"
    assert settings.web_host == "0.0.0.0"
    # the routine worker, then the STAT worker on the next port (worker/multiprocess.py)
    assert container["ports"] == [{"name": "http", "containerPort": settings.web_port},
                                  {"name": "stat-http", "containerPort": settings.web_port + 1}]
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    # longest batch: attempts until the breaker opens, each a full Triton timeout, plus backoff
    attempts = settings.breaker_threshold
    backoff = sum(min(settings.retry_max_s, settings.retry_initial_s * 2**i)
                  for i in range(attempts))
    longest_batch = attempts * settings.triton_timeout_s + backoff
    assert pod["terminationGracePeriodSeconds"] > longest_batch
    # a stop is cut short (exit 143, logged) only after that batch, and before the SIGKILL
    assert longest_batch < settings.stop_deadline_s < pod["terminationGracePeriodSeconds"]


def test_receivers_listen_on_the_pod_ip(rendered: list[Resource]) -> None:
    for name, kind, port_name in (("medstream-dicom-receiver", "dicom", "dicom"),
                                  ("medstream-hl7-receiver", "hl7", "mllp")):
        deployment = one(rendered, "Deployment", name)
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        settings = container_settings(rendered, container)
        assert getattr(settings, f"{kind}_host") == settings.metrics_host == "0.0.0.0"
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports == {port_name: getattr(settings, f"{kind}_port"),
                         "metrics": getattr(settings, f"{kind}_metrics_port")}
        service = one(rendered, "Service", name)
        assert {p["targetPort"] for p in service["spec"]["ports"]} == set(ports)


def test_triton_serves_every_model_from_a_volume(rendered: list[Resource]) -> None:
    pod = one(rendered, "Deployment", "triton")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    loaded = {a.split("=", 1)[1] for a in container["args"] if a.startswith("--load-model=")}
    assert loaded == served_models()
    assert "--model-control-mode=explicit" in container["args"]
    (models,) = [v for v in pod["volumes"] if v["name"] == "models"]
    assert "persistentVolumeClaim" in models
    one(rendered, "PersistentVolumeClaim", models["persistentVolumeClaim"]["claimName"])


def test_triton_has_a_gpu_in_production() -> None:
    for overlay in ("base", "overlays/production"):
        triton = one(render(KUBE / overlay), "Deployment", "triton")
        (container,) = triton["spec"]["template"]["spec"]["containers"]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == 1


def test_keda_scales_the_worker_on_its_consumer_lag(rendered: list[Resource]) -> None:
    scaled = one(rendered, "ScaledObject", "medstream-worker")["spec"]
    (container,) = one(rendered, "Deployment", "medstream-worker")["spec"]["template"][
        "spec"]["containers"]
    settings = container_settings(rendered, container)
    assert scaled["scaleTargetRef"]["name"] == "medstream-worker"
    assert scaled["minReplicaCount"] == 1
    assert scaled["maxReplicaCount"] == settings.topic_partitions
    triggers = scaled["triggers"]
    assert {t["type"] for t in triggers} == {"kafka"}
    assert sorted(t["metadata"]["topic"] for t in triggers) == sorted(
        spec.settings(settings).topic for spec in KINDS)
    for trigger in triggers:
        meta = trigger["metadata"]
        assert meta["consumerGroup"] == settings.app_id
        assert meta["bootstrapServers"] == settings.kafka_bootstrap
        assert int(meta["lagThreshold"]) > 0
        assert ("sasl" in meta) == settings.kafka_security_protocol.startswith("SASL")
        if "authenticationRef" in trigger:
            one(rendered, "TriggerAuthentication", trigger["authenticationRef"]["name"])


def test_service_monitors_scrape_named_service_ports(rendered: list[Resource]) -> None:
    services = [r for r in rendered if r["kind"] == "Service"]
    monitors = [r for r in rendered if r["kind"] == "ServiceMonitor"]
    scraped = set()
    for monitor in monitors:
        labels = monitor["spec"]["selector"]["matchLabels"]
        selected = [s for s in services
                    if labels.items() <= s["metadata"].get("labels", {}).items()]
        assert selected, monitor["metadata"]["name"]
        for endpoint in monitor["spec"]["endpoints"]:
            for service in selected:
                assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
        scraped |= {s["metadata"]["name"] for s in selected}
    assert {"medstream-worker", "triton", *(f"medstream-deliver-{t}" for t in ("fhir", "hl7", "sr"))
            } <= scraped


def test_pod_disruption_budget_covers_the_worker(rendered: list[Resource]) -> None:
    budget = one(rendered, "PodDisruptionBudget", "medstream-worker")["spec"]
    worker = one(rendered, "Deployment", "medstream-worker")["spec"]
    assert budget["selector"] == worker["selector"]


def test_delivery_targets_probe_6070_and_studies_feed_them(rendered: list[Resource]) -> None:
    settings = one(rendered, "ConfigMap", "medstream-settings")["data"]
    assert settings["MEDSTREAM_STUDIES__ENABLED"] == "true"
    for target in ("fhir", "hl7", "sr"):
        deployment = one(rendered, "Deployment", f"medstream-deliver-{target}")
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["ports"] == [{"name": "http", "containerPort": 6070}]
        probes = (container["livenessProbe"]["httpGet"], container["readinessProbe"]["httpGet"])
        assert probes == ({"path": "/health", "port": "http"}, {"path": "/ready", "port": "http"})
        env = {v["name"]: v.get("value") for v in container["env"]}
        assert env["MEDSTREAM_DELIVERY__WEB_HOST"] == "0.0.0.0"
        assert container_settings(rendered, container).delivery.web_port == 6070


def test_worker_reads_the_routing_rules_from_the_models_volume(rendered: list[Resource]) -> None:
    settings = one(rendered, "ConfigMap", "medstream-settings")["data"]
    pod = one(rendered, "Deployment", "medstream-worker")["spec"]["template"]["spec"]
    (worker,) = pod["containers"]
    mount = next(m for m in worker["volumeMounts"] if m["name"] == "models")
    assert mount["readOnly"] and settings["MEDSTREAM_ROUTING__RULES"] == (
        f"{mount['mountPath']}/routing.yaml")
    volume = next(v for v in pod["volumes"] if v["name"] == "models")
    assert volume["persistentVolumeClaim"]["claimName"] == "triton-models"
