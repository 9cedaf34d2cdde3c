"""Producers and receivers against the real broker: running the real CLI and real clients
(dcmtk's echoscu/storescu, python-hl7's mllp_send), reading what arrived, checking it is
de-identified; fixtures (a pytest plugin): `receiver` subprocesses and an `own_broker`.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pydicom
import pytest
from kafka import KafkaConsumer
from kafka.admin import NewTopic
from pydicom.data import get_testdata_file

from medstream_tools.localstack import broker
from medstream_tools.localstack.process import port_open
from medstream_tools.ports import free_port
from worker.settings import Settings
from worker.topics import create_topics

ROOT = Path(__file__).resolve().parents[2]
KEY = "integration-test-pseudonym-key"
CT, MR = Path(get_testdata_file("CT_small.dcm")), Path(get_testdata_file("MR_small.dcm"))
BIN = Path(sys.executable).parent
WAIT_S = 60


def client_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a `medstream` client: the broker, the pseudonym key, `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDSTREAM_")}
    env.update(MEDSTREAM_KAFKA_BOOTSTRAP=settings.kafka_bootstrap, MEDSTREAM_PSEUDONYM_KEY=KEY)
    env.update(extra)
    return env


def run_client(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run a client to completion (bounded), capturing its text output."""
    return subprocess.run(
        args, capture_output=True, text=True, timeout=WAIT_S, check=False, **kwargs
    )


def run_medstream(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_client([sys.executable, "-m", "worker.cli", *args], cwd=ROOT, env=env)


def dicom_echo_ok(port: int, ae_title: str) -> bool:
    return run_client(["echoscu", "-aec", ae_title, "127.0.0.1", str(port)]).returncode == 0


def consume(settings: Settings, topic: str, count: int) -> list:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    records: list = []
    deadline = time.monotonic() + WAIT_S
    try:
        while len(records) < count and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        for batch in consumer.poll(timeout_ms=1000).values():  # anything beyond `count`
            records.extend(batch)
    finally:
        consumer.close()
    return records


def metrics_text(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


def wait_until_up(check: Callable[[], bool], proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else "receiver exited"
        assert time.monotonic() < deadline, "receiver did not come up"
        time.sleep(0.3)


@pytest.fixture
def receiver(settings: Settings) -> Iterator[Callable[..., subprocess.Popen]]:
    """Start `medstream receive ...` subprocesses; terminated (SIGTERM) after the test."""
    procs: list[subprocess.Popen] = []

    def start(args: list[str], env: dict[str, str]) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-m", "worker.cli", "receive", *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=WAIT_S)


def assert_deidentified(value: bytes) -> pydicom.Dataset:
    ds = pydicom.dcmread(io.BytesIO(value))
    originals = {str(pydicom.dcmread(p).PatientID) for p in (CT, MR)}
    assert ds.PatientID.startswith(("PSN-", "UNKNOWN-")) and ds.PatientIdentityRemoved == "YES"
    assert not any(pid.encode() in value for pid in originals if pid)
    assert ds.StudyInstanceUID.startswith("2.25.")
    return ds




@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen]]:
    """A Tansu broker of this test's own (port, process), with topic `own`; the test may stop it."""
    port = free_port()
    plan = broker.plan("tansu", "127.0.0.1", port, tmp_path)
    proc = subprocess.Popen(
        plan.argv, env=plan.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_until_up(lambda: port_open("127.0.0.1", port), proc)
        create_topics(f"127.0.0.1:{port}", [NewTopic("own", 1, 1)])
        yield port, proc
    finally:
        proc.terminate()
        proc.wait(timeout=WAIT_S)


def own_broker_env(settings: Settings, kafka_port: int) -> dict[str, str]:
    return client_env(
        settings,
        MEDSTREAM_KAFKA_BOOTSTRAP=f"127.0.0.1:{kafka_port}",
        MEDSTREAM_PRODUCER_DELIVERY_TIMEOUT_S="4",
        MEDSTREAM_PRODUCER_BOOTSTRAP_TIMEOUT_S="4",
    )


def terminate(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(timeout=WAIT_S)



def mllp_send(port: int, path: Path, *, loose: bool = True) -> list[str]:
    args = [str(BIN / "mllp_send"), "-p", str(port), "-f", str(path), "127.0.0.1"]
    result = run_client(args + (["--loose"] if loose else []))
    assert result.returncode == 0, result.stderr
    return [
        line for line in result.stdout.replace("\r", "\n").splitlines() if line.startswith("MSA")
    ]


def oru_message(
    control: str, minute: int, obx: str, pid: str = "PID|1||MRN-9|||DOE^JANE||19800101|F"
) -> str:
    return (
        f"MSH|^~\\&|MONITOR|ICU|MEDSTREAM|HOSP|202601011{minute:03d}00||ORU^R01|{control}|P|2.5\n"
        f"{pid}\nOBR|1|||VITALS|||2026010112{minute:02d}00\n{obx}\n"
    )


