"""`medstream worker` fails fast, with one clear line and exit code 2, when it cannot serve."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from medstream_tools.ports import free_port
from medstream_tools.soak.worker import ROOT
from tests.support.harness import Topics
from tests.support.harness import TopicsWorker as WorkerProcess
from worker.settings import Settings

pytestmark = pytest.mark.integration


def run_worker(worker: WorkerProcess, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "worker.cli", "worker"], cwd=ROOT, check=False,
                          env={**worker.env(), **env}, capture_output=True, text=True, timeout=60)


@pytest.fixture
def worker(settings: Settings, topic_factory, tmp_path: Path) -> WorkerProcess:
    return WorkerProcess(settings, Topics.create(topic_factory, partitions=1), tmp_path)


def test_unreachable_triton(worker: WorkerProcess) -> None:
    done = run_worker(worker, MEDSTREAM_TRITON_GRPC_URL=f"127.0.0.1:{free_port()}",
                      MEDSTREAM_TRITON_READY_WAIT_S="1")
    assert done.returncode == 2
    assert "cannot start the worker: Triton at 127.0.0.1:" in done.stderr


def test_missing_model(worker: WorkerProcess) -> None:
    done = run_worker(worker, MEDSTREAM_VITALS__MODEL="no_such_model")
    assert done.returncode == 2
    assert "model 'no_such_model'" in done.stderr


def test_missing_topics(worker: WorkerProcess) -> None:
    done = run_worker(worker, MEDSTREAM_TOPIC_PREDICTIONS="never-created-topic")
    assert done.returncode == 2
    assert "topics missing" in done.stderr and "never-created-topic" in done.stderr


def test_invalid_settings(worker: WorkerProcess) -> None:
    done = run_worker(worker, MEDSTREAM_TOPIC_PARTITIONS="0", MEDSTREAM_KAFKA_BOOTSTRAP="nohost")
    assert done.returncode == 2
    assert "invalid settings" in done.stderr and "kafka_bootstrap" in done.stderr
