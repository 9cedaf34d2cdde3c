"""Offline kustomize for the tests of deploy/kubernetes (tests/unit/test_kubernetes.py).

No cluster or kustomize binary here. `render` builds a kustomization with the subset of kustomize
the manifests use (resources, namespace, labels, images, strategic-merge patches merging lists of
named items, JSON 6902 patches); a patch that matches no resource fails. The helpers read the
rendered resources (containers, a container's settings).
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from medstream_delivery.settings import DeliverySettings
from producers.settings import ProducerSettings

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


def pod_specs(resource: Resource) -> list[dict]:
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
        for pod in (p for r in resources for p in pod_specs(r)):
            for container in pod["containers"]:
                name = container["image"].split(":")[0]
                if name == image["name"]:
                    tag = image.get("newTag", container["image"].partition(":")[2])
                    container["image"] = f"{image.get('newName', name)}:{tag}"
    if "namespace" in kustomization:
        for resource in resources:
            resource["metadata"]["namespace"] = kustomization["namespace"]
    return resources


def one(resources: list[Resource], kind: str, name: str) -> Resource:
    (found,) = [r for r in resources if r["kind"] == kind and r["metadata"]["name"] == name]
    return found


def containers(resources: list[Resource]) -> list[dict]:
    return [c for r in resources for pod in pod_specs(r) for c in pod["containers"]]


def medstream_containers(resources: list[Resource]) -> list[dict]:
    return [c for c in containers(resources) if c.get("command", [""])[0] == "medstream"]


def container_settings(resources: list[Resource], container: dict) -> ProducerSettings | DeliverySettings:
    """The settings a container starts with: its ConfigMaps, then its env (secrets as
    stand-ins); `medstream deliver` reads DeliverySettings, the others ProducerSettings."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env |= one(resources, "ConfigMap", source["configMapRef"]["name"])["data"]
    for var in container.get("env", []):
        env[var["name"]] = var.get("value", "secret-stand-in-value")
    with pytest.MonkeyPatch.context() as patch:
        for name in [n for n in os.environ if n.startswith("MEDSTREAM_")]:
            patch.delenv(name)
        for name, value in env.items():
            patch.setenv(name, value)
        return DeliverySettings() if container["command"][1] == "deliver" else ProducerSettings()
