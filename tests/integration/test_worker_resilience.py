"""Triton down then back, and a worker SIGKILLed mid-stream: nothing is lost."""

from __future__ import annotations

import signal
import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest

from medstream_tools.localstack import triton
from medstream_tools.localstack.stack import triton_up
from tests.support.harness import Topics, collect, keys, producer, publish, vitals_window
from tests.support.harness import TopicsWorker as WorkerProcess
from tests.support.harness import wait_for_worker as wait_for
from tests.support.stack import private_triton
from worker.settings import Settings

pytestmark = pytest.mark.integration


def test_triton_unavailable_then_back_loses_nothing(settings: Settings, topic_factory,
                                                    tmp_path: Path) -> None:
    cfg = private_triton(settings, tmp_path / "triton")
    own_triton = triton.service(cfg.state_dir)
    topics = Topics.create(topic_factory)
    worker = WorkerProcess(settings, topics, tmp_path / "worker", extra_env={
        "MEDSTREAM_TRITON_GRPC_URL": f"127.0.0.1:{cfg.grpc_port}",
        "MEDSTREAM_TRITON_TIMEOUT_S": "2", "MEDSTREAM_BREAKER_THRESHOLD": "2",
    }).start()
    try:
        worker.wait_ready()
        first = [(f"a-{i}".encode(), vitals_window(f"a-{i}", seed=i)) for i in range(10)]
        publish(settings, topics.vitals, first)
        collect(settings, topics, lambda o: keys(o, topics.predictions) >= {k for k, _ in first}, 30, worker)

        assert own_triton.stop()
        second = [(f"b-{i}".encode(), vitals_window(f"b-{i}", seed=i)) for i in range(20)]
        publish(settings, topics.vitals, second)
        wait_for(worker, "the breaker to open",  # the probe's `triton` blocker comes first
                 lambda: b"triton:vitals_lstm" in worker.get("/ready")[1], 30)
        assert worker.metric("medstream_circuit_open", {"model": "vitals_lstm"}) == 1
        assert worker.metric("medstream_inference_errors_total", {"model": "vitals_lstm"}) >= 2
        assert worker.metric("medstream_ready") == 0
        during = collect(settings, topics, lambda o: False, 2, worker)
        assert keys(during, topics.predictions).isdisjoint({k for k, _ in second})

        triton_up(cfg)
        wanted = {k for k, _ in first + second}
        outputs = collect(settings, topics, lambda o: keys(o, topics.predictions) >= wanted, 45, worker)
        assert keys(outputs, topics.predictions) == wanted
        assert keys(outputs, topics.deadletter) == set()
        wait_for(worker, "readiness after recovery", lambda: worker.get("/ready")[0] == 200, 15)
        assert worker.metric("medstream_circuit_open", {"model": "vitals_lstm"}) == 0
    finally:
        worker.stop()
        own_triton.stop()


def test_sigkill_mid_stream_then_restart_loses_nothing(settings: Settings, topic_factory,
                                                       tmp_path: Path) -> None:
    topics = Topics.create(topic_factory)
    first = WorkerProcess(settings, topics, tmp_path / "worker").start()
    ids = [f"k-{i}" for i in range(400)]
    poison = {f"k-{i}" for i in range(0, 400, 40)}  # every 40th is truncated JSON
    values = {i: (vitals_window(i, rows=20, seed=n)[:40] if i in poison else vitals_window(i, rows=20, seed=n))
              for n, i in enumerate(ids)}
    second: WorkerProcess | None = None

    def produce() -> None:
        prod = producer(settings)
        futures = []
        for i in ids:
            futures.append(prod.send(topics.vitals, key=i.encode(), value=values[i]))
            time.sleep(0.01)
        for fut in futures:
            fut.get(timeout=30)
        prod.close()

    try:
        first.wait_ready()
        feeder = threading.Thread(target=produce)
        feeder.start()
        collect(settings, topics, lambda o: len(o) >= 60, 30, first)
        first.kill(signal.SIGKILL)
        feeder.join(timeout=60)
        second = WorkerProcess(settings, topics, first.state_dir, app_id=first.app_id).start()
        wanted = {i.encode() for i in ids}
        outputs = collect(settings, topics,
                          lambda o: keys(o, topics.predictions) | keys(o, topics.deadletter) >= wanted,
                          55, second)
        assert keys(outputs, topics.predictions) | keys(outputs, topics.deadletter) == wanted
        assert keys(outputs, topics.deadletter) == {i.encode() for i in poison}
        seen: dict[bytes, list[dict]] = defaultdict(list)
        for o in outputs:
            if o.topic == topics.predictions:
                seen[o.key].append(o.json()["outputs"])
        for key, versions in seen.items():
            assert all(v == versions[0] for v in versions), f"duplicate of {key!r} differs"
        print(f"\nkill/restart: {len(outputs)} outputs for {len(ids)} inputs, "
              f"{len(outputs) - len(ids)} duplicates")
    finally:
        first.stop()
        if second is not None:
            second.stop()


def test_failed_delivery_stops_the_worker_without_committing(settings: Settings, topic_factory,
                                                             tmp_path: Path) -> None:
    topics = Topics.create(topic_factory, partitions=1)
    # a producer misconfigured to refuse records over 1 KiB: the prediction of a window with a
    # long (valid) event id cannot be delivered - not the record's fault, so a fail-stop (a dead
    # letter too large is sent bounded instead: tests/integration/test_hostile_battery.py)
    small = WorkerProcess(settings, topics, tmp_path / "worker",
                          extra_env={"MEDSTREAM_PRODUCER_MAX_REQUEST_SIZE": "1024"}).start()
    second: WorkerProcess | None = None
    try:
        small.wait_ready()
        publish(settings, topics.vitals, [(b"before", vitals_window("before"))])
        collect(settings, topics, lambda o: b"before" in keys(o, topics.predictions), 30, small)
        long_id = "long-" + "x" * 250
        publish(settings, topics.vitals, [(b"long", vitals_window(long_id))])
        assert small.proc is not None and small.proc.wait(timeout=30) == 70
        assert "exiting without acking" in small.log_tail(200)

        second = WorkerProcess(settings, topics, small.state_dir, app_id=small.app_id).start()
        outputs = collect(settings, topics, lambda o: long_id.encode() in keys(o, topics.predictions),
                          45, second)
        assert [o.key for o in outputs if o.topic == topics.predictions].count(long_id.encode()) == 1
    finally:
        small.stop()
        if second is not None:
            second.stop()
