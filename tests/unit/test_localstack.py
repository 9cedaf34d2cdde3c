"""Unit tests of the local-stack plumbing that need no broker or Triton."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from medstream_tools.localstack import broker, triton
from medstream_tools.localstack.process import Service, StackError, port_open, wait_until
from medstream_tools.localstack.stack import StackConfig
from worker.settings import Settings
from worker.topics import topic_specs

CONFIG = """name: "{name}"
backend: "onnxruntime"
max_batch_size: 8
"""


def _model(repo: Path, name: str, config_name: str | None = None, file: str | None = "model.onnx"):
    model = repo / name
    (model / "1").mkdir(parents=True)
    (model / "config.pbtxt").write_text(CONFIG.format(name=config_name or name))
    if file:
        (model / "1" / file).write_bytes(b"onnx")
    return model


def test_discover_models_lists_directories_with_config(tmp_path: Path) -> None:
    _model(tmp_path, "b")
    _model(tmp_path, "a")
    (tmp_path / "training").mkdir()
    assert triton.discover_models(tmp_path) == ("a", "b")


def test_check_model_accepts_complete_model(tmp_path: Path) -> None:
    triton.check_model(_model(tmp_path, "good"))


def test_check_model_names_missing_model_file(tmp_path: Path) -> None:
    model = _model(tmp_path, "scan_cnn", file=None)
    with pytest.raises(StackError, match=r"scan_cnn.*missing model file model.onnx"):
        triton.check_model(model)


def test_check_model_names_mismatched_config_name(tmp_path: Path) -> None:
    model = _model(tmp_path, "scan_cnn", config_name="other")
    with pytest.raises(StackError, match="names model 'other'"):
        triton.check_model(model)


def test_check_model_requires_version_directory(tmp_path: Path) -> None:
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.pbtxt").write_text(CONFIG.format(name="m"))
    with pytest.raises(StackError, match="no version directory"):
        triton.check_model(model)


def test_stack_config_ports_follow_settings_and_overrides() -> None:
    settings = Settings(
        kafka_bootstrap="127.0.0.1:19092",
        triton_http_url="127.0.0.1:18000",
        triton_grpc_url="127.0.0.1:18001",
        triton_metrics_url="127.0.0.1:18002",
        state_dir=Path("/tmp/x"),
    )
    cfg = StackConfig.from_settings(settings, grpc_port=28001, http_port=None)
    assert (cfg.kafka_port, cfg.http_port, cfg.grpc_port, cfg.metrics_port) == (
        19092, 18000, 28001, 18002)
    assert cfg.state_dir == Path("/tmp/x") and cfg.broker_kind == "tansu"


def test_broker_plan_uses_loopback_listener(tmp_path: Path) -> None:
    plan = broker.plan("tansu", "127.0.0.1", 19092, tmp_path)
    assert "tcp://127.0.0.1:19092" in plan.argv and "memory://tansu/" in plan.argv


def test_broker_plan_rejects_unknown_kind(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="unknown broker 'redpanda'"):
        broker.plan("redpanda", "127.0.0.1", 19092, tmp_path)


def test_topic_specs_give_scans_and_deadletter_the_message_limit() -> None:
    specs = {t.name: t for t in topic_specs(Settings(topic_partitions=3, max_message_bytes=2048))}
    assert set(specs) == {"scans", "scans.stat", "vitals", "vitals.stat", "predictions",
                          "deadletter"}
    assert specs["scans.stat"].topic_configs == {"max.message.bytes": "2048"}
    assert all(t.num_partitions == 3 for t in specs.values())
    assert specs["scans"].topic_configs == {"max.message.bytes": "2048"}
    assert specs["deadletter"].topic_configs == {"max.message.bytes": "2048"}


def test_service_start_stop_and_stale_pid_file(tmp_path: Path) -> None:
    svc = Service("sleeper", tmp_path)
    pid = svc.start([sys.executable, "-c", "import time; time.sleep(60)"], {})
    assert svc.pid() == pid and svc.alive(pid)
    assert svc.stop(timeout_s=5)
    assert svc.pid() is None and not svc.pid_file.exists()
    svc.pid_file.write_text('{"pid": 1, "started": 0}')  # pid 1 started at another time
    assert svc.pid() is None and not svc.pid_file.exists()


def test_wait_until_reports_exit_with_error_lines(tmp_path: Path) -> None:
    svc = Service("crasher", tmp_path)
    code = "import sys; print('booting'); print('error: port busy'); sys.exit(3)"
    pid = svc.start([sys.executable, "-c", code], {})
    with pytest.raises(StackError, match=r"(?s)crasher exited before ready.*error: port busy"):
        wait_until(svc, pid, lambda: False, timeout_s=10, what="ready")


def test_wait_until_times_out_with_log_tail(tmp_path: Path) -> None:
    svc = Service("slow", tmp_path)
    code = "print('still starting', flush=True); import time; time.sleep(30)"
    pid = svc.start([sys.executable, "-c", code], {})
    try:
        with pytest.raises(StackError, match=r"(?s)did not reach ready within 1 s.*still starting"):
            wait_until(svc, pid, lambda: False, timeout_s=1, what="ready")
    finally:
        svc.stop(timeout_s=5)


def test_port_open_sees_a_listener() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert port_open("127.0.0.1", port)
    assert not port_open("127.0.0.1", port)


def test_fingerprint_changes_when_a_model_file_is_rewritten(tmp_path: Path) -> None:
    model = _model(tmp_path, "m")
    before = triton.fingerprint(model)
    assert triton.fingerprint(model) == before
    (model / "1" / "model.onnx").write_bytes(b"retrained weights")
    assert triton.fingerprint(model) != before
