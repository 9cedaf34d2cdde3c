"""`medstream local up` fails fast, naming the problem, on bad configuration.

Each case runs the real command on free ports with its own state dir, so the shared stack
is untouched; a hang fails the test through the subprocess timeout.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from medstream_tools.ports import free_ports

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BOUND_S = 120  # generous upper bound: failing must never mean hanging


class LocalStack:
    """Runs `medstream local ...` against one private state dir and port set."""

    def __init__(self, state_dir: Path, repo: Path) -> None:
        kafka, http, grpc, metrics = free_ports(4)
        self.ports = {"kafka": kafka, "http": http, "grpc": grpc, "metrics": metrics}
        self.base = [
            "--state-dir", str(state_dir), "--model-repository", str(repo),
            "--kafka-port", str(kafka), "--http-port", str(http),
            "--grpc-port", str(grpc), "--metrics-port", str(metrics),
        ]

    def run(self, action: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "worker.cli", "local", action, *self.base, "--timeout", "60"],
            cwd=ROOT, capture_output=True, text=True, timeout=BOUND_S, check=False,
        )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A private copy of the project's model repository (model directories only)."""
    target = tmp_path / "models"
    for config in (ROOT / "triton_models").glob("*/config.pbtxt"):
        shutil.copytree(config.parent, target / config.parent.name)
    return target


@pytest.fixture
def local(tmp_path: Path, repo: Path) -> Iterator[LocalStack]:
    stack = LocalStack(tmp_path / "state", repo)
    yield stack
    stack.run("down")


def test_kafka_port_taken_by_foreign_process(local: LocalStack) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", local.ports["kafka"]))
        squatter.listen()
        result = local.run("up")
    assert result.returncode == 1
    assert f"port 127.0.0.1:{local.ports['kafka']} is already in use" in result.stderr


def test_triton_port_taken_by_foreign_process(local: LocalStack) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", local.ports["grpc"]))
        squatter.listen()
        result = local.run("up")
    assert result.returncode == 1
    assert f"port 127.0.0.1:{local.ports['grpc']} is already in use" in result.stderr


def test_missing_model_file(local: LocalStack, repo: Path) -> None:
    (repo / "vitals_lstm" / "1" / "model.onnx").unlink()
    result = local.run("up")
    assert result.returncode == 1
    assert "model 'vitals_lstm': missing model file model.onnx" in result.stderr


def test_broken_config_pbtxt(local: LocalStack, repo: Path) -> None:
    config = repo / "scan_cnn" / "config.pbtxt"
    config.write_text(config.read_text() + "\nmax_batch_size: [ oops\n")
    result = local.run("up")
    assert result.returncode == 1
    assert "triton exited before readiness" in result.stderr
    assert "scan_cnn/config.pbtxt" in result.stderr


def test_corrupt_onnx_file(local: LocalStack, repo: Path) -> None:
    (repo / "scan_cnn" / "1" / "model.onnx").write_bytes(b"not an onnx graph")
    result = local.run("up")
    assert result.returncode == 1
    assert "scan_cnn" in result.stderr and "error" in result.stderr.lower()


def test_status_reports_down_stack(local: LocalStack) -> None:
    result = local.run("status")
    assert result.returncode == 1
    assert "broker: not running" in result.stdout and "triton: not running" in result.stdout
