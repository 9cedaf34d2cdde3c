"""Readiness of an IDLE worker follows its dependencies (no traffic, so no breaker involved):
Triton stopped -> /ready 503 naming `triton`, back -> 200; its broker stopped -> 503 naming
`kafka`. /health stays 200 meanwhile (the event loop is fine), and the consumer lag is exported
for every assigned partition before any message was served. A SIGTERMed worker whose broker is
gone stops cleanly (exit 0), or exits 143 when MEDSTREAM_STOP_DEADLINE_S cuts the stop short.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from kafka.admin import NewTopic

from medstream_tools.localstack import broker, triton
from medstream_tools.localstack.stack import StackConfig, broker_up, triton_up
from medstream_tools.ports import free_port
from tests.support.harness import Topics
from tests.support.harness import TopicsWorker as WorkerProcess
from tests.support.harness import wait_for_worker as wait_for
from tests.support.stack import private_triton
from worker.settings import Settings
from worker.stopping import STOP_DEADLINE_EXIT_CODE
from worker.topics import create_topics

STOP_WAIT_S = 30.0

pytestmark = pytest.mark.integration


def blockers(worker: WorkerProcess) -> list[str] | None:
    """The blockers /ready names (None while it answers 200)."""
    status, body = worker.get("/ready")
    return None if status == 200 else json.loads(body)["blockers"]


def test_idle_worker_is_not_ready_while_triton_is_down(settings: Settings, topic_factory,
                                                         tmp_path: Path) -> None:
    cfg = private_triton(settings, tmp_path / "triton")
    own_triton = triton.service(cfg.state_dir)
    topics = Topics.create(topic_factory)
    worker = WorkerProcess(settings, topics, tmp_path / "worker", extra_env={
        "MEDSTREAM_TRITON_GRPC_URL": f"127.0.0.1:{cfg.grpc_port}"}).start()
    try:
        worker.wait_ready(60)

        def lag_partitions() -> set[tuple[str, str]]:
            return {(t, p) for t in (topics.scans, topics.vitals) for p in "0123"
                    if worker.get("/metrics")[1].decode().count(
                        f'medstream_consumer_lag{{partition="{p}",topic="{t}"}} 0.0')}

        wait_for(worker, "lag of all 8 assigned partitions", lambda: len(lag_partitions()) == 8, 30)
        assert worker.metric("medstream_circuit_open", {"model": "scan_cnn"}) == 0
        assert own_triton.stop()
        wait_for(worker, "/ready 503", lambda: blockers(worker) is not None, 30)
        assert blockers(worker) == ["triton"]  # idle: no breaker opened, the probe saw it
        assert worker.metric("medstream_ready") == 0
        status, body = worker.get("/health")
        assert status == 200 and json.loads(body)["status"] == "ok"
        triton_up(cfg)
        wait_for(worker, "/ready 200 after Triton returned", lambda: blockers(worker) is None, 60)
        assert worker.metric("medstream_ready") == 1
    finally:
        worker.stop()
        own_triton.stop()


@pytest.mark.parametrize(("deadline_env", "exit_code"), [
    ({}, 0),  # a clean stop (it took 62 s before worker/streaming_patches.py patch 5)
    ({"MEDSTREAM_STOP_DEADLINE_S": "0.05"}, STOP_DEADLINE_EXIT_CODE),  # the deadline cuts it
], ids=["clean", "deadline"])
def test_idle_worker_is_not_ready_while_its_broker_is_down_and_stops_on_sigterm(
        settings: Settings, tmp_path: Path, deadline_env: dict[str, str], exit_code: int) -> None:
    cfg = StackConfig.from_settings(settings, state_dir=tmp_path / "broker", kafka_port=free_port())
    cfg.state_dir.mkdir()
    broker_up(cfg)
    own_broker = broker.service(cfg.state_dir)
    bootstrap = f"{cfg.kafka_host}:{cfg.kafka_port}"
    topics = Topics("scans", "vitals", "predictions", "deadletter")
    create_topics(bootstrap, [NewTopic(t, 2, 1) for t in vars(topics).values()])
    worker = WorkerProcess(settings.model_copy(update={"kafka_bootstrap": bootstrap}), topics,
                           tmp_path / "worker", extra_env=deadline_env).start()
    try:
        worker.wait_ready(60)
        assert own_broker.stop()
        wait_for(worker, "/ready 503", lambda: blockers(worker) is not None, 30)
        assert "kafka" in blockers(worker)  # type: ignore[operator]
        assert worker.get("/health")[0] == 200
        assert worker.proc is not None
        worker.proc.send_signal(signal.SIGTERM)
        # a hang guard, not a timing: the stop takes ~2 s (62 s before streaming patch 5)
        assert worker.proc.wait(STOP_WAIT_S) == exit_code, worker.log_tail()
        cut_short = "still stopping" in worker.log_file.read_text()
        assert cut_short == (exit_code == STOP_DEADLINE_EXIT_CODE), worker.log_tail()
    finally:
        if worker.proc is not None and worker.proc.poll() is None:
            worker.kill()
        own_broker.stop()
