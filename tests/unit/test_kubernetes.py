"""deploy/kubernetes: every kustomization builds offline, validates, and agrees with the code.

No cluster or kustomize binary here. `render` builds a kustomization with the subset of kustomize
the manifests use (resources, namespace, labels, images, strategic-merge patches merging lists of
named items, JSON 6902 patches); a patch that matches no resource fails. Core kinds are checked
against the Kubernetes schemas shipped by `kubernetes-validate` (strict: unknown fields fail),
the CRD kinds (KEDA, Prometheus Operator) against the schema subsets in data/crds/.
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from runtime_cli import assert_runtime_command
from test_compose import is_setting, served_models

from medstream_delivery.settings import DeliverySettings
from producers.settings import ProducerSettings
from worker.kinds import KINDS

ROOT = Path(__file__).resolve().parents[2]
KUBE = ROOT / "deploy/kubernetes"
CRDS = Path(__file__).parent / "data/crds"
KUBERNETES_VERSION = "1.30"
KUSTOMIZATIONS = ["base", "overlays/local", "overlays/production"]
# resource.Quantity (the schemas only say int-or-string)
QUANTITY = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[KMGTPE]i|[numkMGTPE])?$")
CRD_SCHEMAS = {
    (crd["spec"]["group"], version["name"], crd["spec"]["names"]["kind"]):
        version["schema"]["openAPIV3Schema"]
    for crd in (yaml.safe_load(p.read_text()) for p in sorted(CRDS.glob("*.yaml")))
    for version in crd["spec"]["versions"]
}

Resource = dict[str, Any]


def _merge(base: Any, patch: Any) -> Any:
    """Strategic merge: maps deep-merge, lists of named maps merge by name, others replace."""
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for key, value in patch.items():
            merged[key] = _merge(base[key], value) if key in base else value
        return merged
    if (isinstance(base, list) and isinstance(patch, list)
            and all(isinstance(i, dict) and "name" in i for i in base + patch)):
        by_name = {item["name"]: item for item in base}
        merged = [_merge(by_name[i["name"]], i) if i["name"] in by_name else i for i in patch]
        patched = {i["name"] for i in patch}
        return [i for i in base if i["name"] not in patched] + merged
    return patch


def _json_patch(resource: Resource, ops: list[dict]) -> None:
    """JSON 6902 add/replace/remove on '/'-separated paths (list indices as numbers)."""
    for op in ops:
        *parents, last = op["path"].lstrip("/").split("/")
        node: Any = resource
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        key: Any = int(last) if isinstance(node, list) else last
        if op["op"] in ("remove", "replace"):
            assert (key in node) if isinstance(node, dict) else key < len(node), op
        if op["op"] == "remove":
            del node[key]
        else:
            node[key] = copy.deepcopy(op["value"])


def _matches(resource: Resource, target: dict[str, str]) -> bool:
    group = resource["apiVersion"].rpartition("/")[0]
    return all(resource["metadata"]["name"] == v if k == "name" else
               resource["kind"] == v if k == "kind" else group == v
               for k, v in target.items())


def _pod_specs(resource: Resource) -> list[dict]:
    if resource["kind"] in ("Deployment", "Job"):
        return [resource["spec"]["template"]["spec"]]
    return []


def render(folder: Path) -> list[Resource]:
    """The resources `kustomize build folder` would print (for the features used here)."""
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    resources: list[Resource] = []
    for entry in kustomization.get("resources", []):
        path = (folder / entry).resolve()
        assert path.exists(), f"{folder.name}: resource {entry} does not exist"
        resources += render(path) if path.is_dir() else [
            doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    for patch in kustomization.get("patches", []):
        path = folder / patch["path"]
        assert path.is_file(), f"{folder.name}: patch {patch['path']} does not exist"
        body = yaml.safe_load(path.read_text())
        target = patch.get("target") or {"kind": body["kind"], "name": body["metadata"]["name"]}
        matched = [i for i, r in enumerate(resources) if _matches(r, target)]
        assert matched, f"{folder.name}: patch {patch['path']} targets no resource ({target})"
        for i in matched:
            if isinstance(body, list):
                _json_patch(resources[i], body)
            else:
                resources[i] = _merge(resources[i], body)
    for label in kustomization.get("labels", []):
        for resource in resources:
            resource["metadata"].setdefault("labels", {}).update(label["pairs"])
    for image in kustomization.get("images", []):
        for pod in (p for r in resources for p in _pod_specs(r)):
            for container in pod["containers"]:
                name = container["image"].split(":")[0]
                if name == image["name"]:
                    tag = image.get("newTag", container["image"].partition(":")[2])
                    container["image"] = f"{image.get('newName', name)}:{tag}"
    if "namespace" in kustomization:
        for resource in resources:
            resource["metadata"]["namespace"] = kustomization["namespace"]
    return resources


@pytest.fixture(scope="module", params=KUSTOMIZATIONS)
def rendered(request: pytest.FixtureRequest) -> list[Resource]:
    return render(KUBE / request.param)


def _one(resources: list[Resource], kind: str, name: str) -> Resource:
    (found,) = [r for r in resources if r["kind"] == kind and r["metadata"]["name"] == name]
    return found


def _containers(resources: list[Resource]) -> list[dict]:
    return [c for r in resources for pod in _pod_specs(r) for c in pod["containers"]]


def _medstream_containers(resources: list[Resource]) -> list[dict]:
    return [c for c in _containers(resources) if c.get("command", [""])[0] == "medstream"]


def _settings(resources: list[Resource], container: dict) -> ProducerSettings | DeliverySettings:
    """The settings a container starts with: its ConfigMaps, then its env (secrets as
    stand-ins); `medstream deliver` reads DeliverySettings, the others ProducerSettings."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env |= _one(resources, "ConfigMap", source["configMapRef"]["name"])["data"]
    for var in container.get("env", []):
        env[var["name"]] = var.get("value", "secret-stand-in-value")
    with pytest.MonkeyPatch.context() as patch:
        for name in [n for n in os.environ if n.startswith("MEDSTREAM_")]:
            patch.delenv(name)
        for name, value in env.items():
            patch.setenv(name, value)
        return DeliverySettings() if container["command"][1] == "deliver" else ProducerSettings()


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
    for container in _containers(rendered):
        resources = container["resources"]
        assert {"requests", "limits"} <= set(resources), container["name"]
        for value in (*resources["requests"].values(), *resources["limits"].values()):
            assert QUANTITY.match(str(value)), f"{container['name']}: {value!r}"


def test_every_medstream_variable_is_a_settings_field(rendered: list[Resource]) -> None:
    used = set(_one(rendered, "ConfigMap", "medstream-settings")["data"]) | set(
        _one(rendered, "ConfigMap", "medstream-delivery")["data"]) | {
        var["name"] for c in _containers(rendered) for var in c.get("env", [])}
    assert all(name.startswith("MEDSTREAM_") for name in used)
    assert sorted(n for n in used if not is_setting(n)) == []


def test_every_container_starts_with_valid_settings(rendered: list[Resource]) -> None:
    for container in _medstream_containers(rendered):
        _settings(rendered, container)  # raises on an invalid value


def test_containers_run_runtime_commands_of_the_image(rendered: list[Resource]) -> None:
    containers = _medstream_containers(rendered)
    assert {tuple(c["command"]) for c in containers} == {
        ("medstream", "worker"), ("medstream", "topics"),
        ("medstream", "receive", "dicom"), ("medstream", "receive", "hl7"),
        *(("medstream", "deliver", target) for target in ("fhir", "hl7", "sr"))}
    for container in containers:
        assert_runtime_command(container["command"])
        assert container["image"].split(":")[0].endswith("medstream")


def test_no_literal_secrets(rendered: list[Resource]) -> None:
    assert "Secret" not in {r["kind"] for r in rendered}
    secret_fields = {name for name, field in ProducerSettings.model_fields.items()
                     if "SecretStr" in str(field.annotation)} | {"fhir__bearer_token"}
    for container in _containers(rendered):
        for var in container.get("env", []):
            if var["name"].removeprefix("MEDSTREAM_").lower() in secret_fields:
                assert "secretKeyRef" in var.get("valueFrom", {}), var["name"]


def test_worker_probes_and_grace_period(rendered: list[Resource]) -> None:
    worker = _one(rendered, "Deployment", "medstream-worker")
    pod = worker["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    settings = _settings(rendered, container)
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
    assert pod["terminationGracePeriodSeconds"] > attempts * settings.triton_timeout_s + backoff


def test_receivers_listen_on_the_pod_ip(rendered: list[Resource]) -> None:
    for name, kind, port_name in (("medstream-dicom-receiver", "dicom", "dicom"),
                                  ("medstream-hl7-receiver", "hl7", "mllp")):
        deployment = _one(rendered, "Deployment", name)
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        settings = _settings(rendered, container)
        assert getattr(settings, f"{kind}_host") == settings.metrics_host == "0.0.0.0"
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports == {port_name: getattr(settings, f"{kind}_port"),
                         "metrics": getattr(settings, f"{kind}_metrics_port")}
        service = _one(rendered, "Service", name)
        assert {p["targetPort"] for p in service["spec"]["ports"]} == set(ports)


def test_triton_serves_every_model_from_a_volume(rendered: list[Resource]) -> None:
    pod = _one(rendered, "Deployment", "triton")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    loaded = {a.split("=", 1)[1] for a in container["args"] if a.startswith("--load-model=")}
    assert loaded == served_models()
    assert "--model-control-mode=explicit" in container["args"]
    (models,) = [v for v in pod["volumes"] if v["name"] == "models"]
    assert "persistentVolumeClaim" in models
    _one(rendered, "PersistentVolumeClaim", models["persistentVolumeClaim"]["claimName"])


def test_triton_has_a_gpu_in_production() -> None:
    for overlay in ("base", "overlays/production"):
        triton = _one(render(KUBE / overlay), "Deployment", "triton")
        (container,) = triton["spec"]["template"]["spec"]["containers"]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == 1


def test_keda_scales_the_worker_on_its_consumer_lag(rendered: list[Resource]) -> None:
    scaled = _one(rendered, "ScaledObject", "medstream-worker")["spec"]
    (container,) = _one(rendered, "Deployment", "medstream-worker")["spec"]["template"][
        "spec"]["containers"]
    settings = _settings(rendered, container)
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
            _one(rendered, "TriggerAuthentication", trigger["authenticationRef"]["name"])


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
    budget = _one(rendered, "PodDisruptionBudget", "medstream-worker")["spec"]
    worker = _one(rendered, "Deployment", "medstream-worker")["spec"]
    assert budget["selector"] == worker["selector"]


def test_delivery_targets_probe_6070_and_studies_feed_them(rendered: list[Resource]) -> None:
    settings = _one(rendered, "ConfigMap", "medstream-settings")["data"]
    assert settings["MEDSTREAM_STUDIES__ENABLED"] == "true"
    for target in ("fhir", "hl7", "sr"):
        deployment = _one(rendered, "Deployment", f"medstream-deliver-{target}")
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["ports"] == [{"name": "http", "containerPort": 6070}]
        probes = (container["livenessProbe"]["httpGet"], container["readinessProbe"]["httpGet"])
        assert probes == ({"path": "/health", "port": "http"}, {"path": "/ready", "port": "http"})
        env = {v["name"]: v.get("value") for v in container["env"]}
        assert env["MEDSTREAM_DELIVERY__WEB_HOST"] == "0.0.0.0"
        assert _settings(rendered, container).delivery.web_port == 6070


def test_worker_reads_the_routing_rules_from_the_models_volume(rendered: list[Resource]) -> None:
    settings = _one(rendered, "ConfigMap", "medstream-settings")["data"]
    pod = _one(rendered, "Deployment", "medstream-worker")["spec"]["template"]["spec"]
    (worker,) = pod["containers"]
    mount = next(m for m in worker["volumeMounts"] if m["name"] == "models")
    assert mount["readOnly"] and settings["MEDSTREAM_ROUTING__RULES"] == (
        f"{mount['mountPath']}/routing.yaml")
    volume = next(v for v in pod["volumes"] if v["name"] == "models")
    assert volume["persistentVolumeClaim"]["claimName"] == "triton-models"
