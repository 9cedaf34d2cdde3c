"""The installed package is the product: the wheel, installed without extras, runs every command.

The module fixture builds the wheel from a clean copy of the sources (what the image's builder
stage does), creates a fresh virtual environment and `pip install`s the wheel alone: no extras,
no PYTHONPATH, no source tree on the path, the working directory a temporary folder. So a
runtime module that imports a package the wheel does not declare, or a module missing from the
wheel, fails here. Each runtime command then runs with the venv's `medstream` against the shared
local stack, on topics, ports and a consumer group of its own.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kafka import KafkaAdminClient
from pydicom.data import get_testdata_file

from medstream_tools.ports import free_port
from worker.settings import Settings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
KEY = "installed-package-test-pseudonym-key"
WAIT_S = 120.0
TOPIC_VARIABLES = ("MEDSTREAM_SCAN__TOPIC", "MEDSTREAM_VITALS__TOPIC",
                   "MEDSTREAM_TOPIC_PREDICTIONS", "MEDSTREAM_TOPIC_DEADLETTER")


@dataclass(frozen=True)
class Installed:
    """The venv's `medstream` and a working folder outside the source tree."""

    medstream: Path
    work: Path
    install_s: float  # wheel build + venv + pip install


def _sources(dest: Path) -> Path:
    """A clean copy of what the wheel is built from (no build/ or egg-info leftovers)."""
    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"]["find"]["include"]
    dest.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, dest / name)
    for package in {pattern.rstrip("*") for pattern in include}:
        shutil.copytree(ROOT / package, dest / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


def _check(args: list[str | Path], timeout: float = 600) -> None:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout, check=False)
    assert done.returncode == 0, f"{' '.join(map(str, args))}:\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    """`pip wheel` the project, then install the wheel, and only it, into a fresh venv."""
    tmp = tmp_path_factory.mktemp("installed")
    start = time.monotonic()
    pip = ["-m", "pip", "--disable-pip-version-check", "--quiet"]
    _check([sys.executable, *pip, "wheel", "--no-deps", "-w", tmp / "dist", _sources(tmp / "src")])
    (wheel,) = (tmp / "dist").glob("medstream-*.whl")
    _check([sys.executable, "-m", "venv", tmp / "venv"])
    _check([tmp / "venv/bin/python", *pip, "install", wheel])
    work = tmp / "work"
    work.mkdir()
    yield Installed(tmp / "venv/bin/medstream", work, time.monotonic() - start)
    shutil.rmtree(tmp / "venv")  # ~280 MB; the logs in work/ stay for a failed run


@pytest.fixture(scope="module")
def env(installed: Installed, settings: Settings) -> dict[str, str]:
    """A bare environment (no PYTHONPATH) naming the shared stack and fresh topics."""
    suffix = uuid.uuid4().hex[:10]
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(installed.work),
        "LANG": "C.UTF-8",
        "MEDSTREAM_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "MEDSTREAM_TRITON_GRPC_URL": settings.triton_grpc_url,
        "MEDSTREAM_STATE_DIR": str(installed.work / "state"),
        "MEDSTREAM_CLAIM_CHECK_DIR": str(installed.work / "claim-check"),
        "MEDSTREAM_PSEUDONYM_KEY": KEY,
        "MEDSTREAM_PRODUCE_METRICS_PORT": "0",
        "MEDSTREAM_APP_ID": f"installed-{suffix}",
        # the routing rules ship with the model repository, not in the wheel
        "MEDSTREAM_ROUTING__RULES": str(ROOT / "triton_models/routing.yaml"),
        **{variable: f"installed-{variable.lower()}-{suffix}" for variable in TOPIC_VARIABLES},
    }


def _run(installed: Installed, env: dict[str, str], *args: str,
         timeout: float = WAIT_S) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(installed.medstream), *args], cwd=installed.work, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def topics(installed: Installed, env: dict[str, str]) -> set[str]:
    """`medstream topics` run once; the four topic names it was given."""
    done = _run(installed, env, "topics")
    assert done.returncode == 0, done.stderr
    return {env[variable] for variable in TOPIC_VARIABLES}


@pytest.fixture
def service(installed: Installed) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start long-running `medstream ...` commands; each must stop cleanly on SIGTERM."""
    procs: list[subprocess.Popen[str]] = []

    def start(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
        log = open(installed.work / f"{args[0]}-{len(procs)}.log", "w")  # noqa: SIM115
        proc = subprocess.Popen([str(installed.medstream), *args], cwd=installed.work, env=env,
                                stdout=log, stderr=subprocess.STDOUT, text=True)
        log.close()
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def _log(installed: Installed) -> str:
    logs = sorted(installed.work.glob("*.log"), key=lambda p: p.stat().st_mtime)
    return "\n".join(p.read_text(errors="replace")[-3000:] for p in logs)


def _wait_until(installed: Installed, proc: subprocess.Popen[str], what: str,
                check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        assert proc.poll() is None, f"exited {proc.returncode}:\n{_log(installed)}"
        assert time.monotonic() < deadline, f"no {what} in {WAIT_S}s:\n{_log(installed)}"
        time.sleep(0.5)


def _http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def _stop(installed: Installed, proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0, _log(installed)


def test_wheel_installs_into_a_fresh_venv(installed: Installed) -> None:
    assert installed.medstream.is_file()
    print(f"wheel + venv + install: {installed.install_s:.1f}s")


def test_topics_creates_the_configured_topics(topics: set[str], settings: Settings) -> None:
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        assert topics <= set(admin.list_topics())
    finally:
        admin.close()


def test_worker_becomes_ready_and_stops_on_sigterm(
        installed: Installed, env: dict[str, str], topics: set[str],
        service: Callable[..., subprocess.Popen[str]]) -> None:
    port = free_port()
    proc = service({**env, "MEDSTREAM_WEB_PORT": str(port)}, "worker")
    _wait_until(installed, proc, "200 from /ready",
                lambda: _http_status(f"http://127.0.0.1:{port}/ready") == 200)
    _stop(installed, proc)


def test_receive_dicom_answers_c_echo(
        installed: Installed, env: dict[str, str], topics: set[str],
        service: Callable[..., subprocess.Popen[str]]) -> None:
    port = free_port()
    proc = service({**env, "MEDSTREAM_DICOM_PORT": str(port),
                    "MEDSTREAM_DICOM_METRICS_PORT": str(free_port())}, "receive", "dicom")
    echo = ["echoscu", "-aec", "MEDSTREAM", "127.0.0.1", str(port)]
    _wait_until(installed, proc, "C-ECHO answer", lambda: subprocess.run(
        echo, capture_output=True, timeout=30, check=False).returncode == 0)
    _stop(installed, proc)


def test_receive_hl7_listens(installed: Installed, env: dict[str, str], topics: set[str],
                             service: Callable[..., subprocess.Popen[str]]) -> None:
    port, metrics = free_port(), free_port()
    proc = service({**env, "MEDSTREAM_HL7_PORT": str(port),
                    "MEDSTREAM_HL7_METRICS_PORT": str(metrics)}, "receive", "hl7")

    def listening() -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0

    _wait_until(installed, proc, "MLLP listener", listening)
    assert _http_status(f"http://127.0.0.1:{metrics}/metrics") == 200
    _stop(installed, proc)


def test_produce_scans_and_vitals(installed: Installed, env: dict[str, str],
                                  topics: set[str]) -> None:
    scans = _run(installed, env, "produce", "scans", get_testdata_file("CT_small.dcm"))
    assert scans.returncode == 0, scans.stderr
    vitals = _run(installed, env, "produce", "vitals", "--simulate", "2", "--duration", "120")
    assert vitals.returncode == 0, vitals.stderr


def test_route_explain_runs_on_a_file(installed: Installed, env: dict[str, str]) -> None:
    done = _run(installed, env, "route", "explain", get_testdata_file("CT_small.dcm"))
    assert done.returncode == 0, done.stderr
    assert "-> skipped: rule (rule 'ct'" in done.stdout


def test_tool_command_without_its_extra_names_the_extra(installed: Installed,
                                                        env: dict[str, str]) -> None:
    done = _run(installed, env, "local", "status")
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert "'local' extra" in done.stderr or "medstream[local]" in done.stderr, done.stderr


def test_deliver_help_and_its_stack_import_from_the_wheel(installed: Installed,
                                                          env: dict[str, str]) -> None:
    """`deliver --help` lists the targets; `deliver fhir` without a base URL imports the whole
    delivery stack (FHIR, HL7, SR libraries) and stops with one line and status 2."""
    done = _run(installed, env, "deliver", "--help")
    assert done.returncode == 0, done.stderr
    assert "{fhir,hl7,sr}" in done.stdout
    fhir = _run(installed, {k: v for k, v in env.items() if not k.startswith("MEDSTREAM_FHIR")},
                "deliver", "fhir")
    assert fhir.returncode == 2 and "Traceback" not in fhir.stderr, fhir.stderr
    assert fhir.stderr.startswith("medstream deliver fhir: error:"), fhir.stderr


def test_deliver_hl7_serves_health_and_stops_on_sigterm(
        installed: Installed, env: dict[str, str], topics: set[str],
        service: Callable[..., subprocess.Popen[str]]) -> None:
    web = free_port()
    proc = service({**env, "MEDSTREAM_DELIVERY__WEB_PORT": str(web),
                    "MEDSTREAM_DELIVERY__STUDIES_TOPIC": env["MEDSTREAM_TOPIC_PREDICTIONS"],
                    "MEDSTREAM_DELIVERY__ALERTS_TOPIC": env["MEDSTREAM_TOPIC_DEADLETTER"],
                    "MEDSTREAM_DELIVERY__DEADLETTER_TOPIC": f"{env['MEDSTREAM_APP_ID']}-dlq",
                    "MEDSTREAM_DELIVERY__GROUP_PREFIX": env["MEDSTREAM_APP_ID"],
                    "MEDSTREAM_MLLP__PORT": str(free_port())}, "deliver", "hl7")
    _wait_until(installed, proc, "200 from /health",
                lambda: _http_status(f"http://127.0.0.1:{web}/health") == 200)
    assert _http_status(f"http://127.0.0.1:{web}/metrics") == 200
    _stop(installed, proc)
