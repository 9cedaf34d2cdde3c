"""Two workers in one consumer group; one SIGKILLed (the survivor takes over), then a third joins."""

from __future__ import annotations

import time

import pytest

from medstream_tools.soak.accounting import assert_no_loss, report, settle
from medstream_tools.soak.load import SteadyLoad
from medstream_tools.soak.waiting import wait_for
from medstream_tools.soak.worker import WorkerProcess

pytestmark = pytest.mark.chaos


def served_since(worker: WorkerProcess, before: float, more: int) -> bool:
    return worker.consumed() >= before + more


def partitions_served(worker: WorkerProcess) -> set[tuple[str, str]]:
    """(topic, partition) pairs this worker has acked records of (its lag series)."""
    return {(dict(labels)["topic"], dict(labels)["partition"])
            for name, labels in worker.metrics() if name == "medstream_consumer_lag"}


def test_group_survives_a_killed_member_and_a_joining_one(scenario) -> None:
    sc = scenario("rebalance")
    first, second, third = sc.worker(0), sc.worker(1), sc.worker(2)
    load = SteadyLoad(sc.settings.kafka_bootstrap, sc.settings.scan.topic,
                      sc.settings.vitals.topic).start()
    try:
        first.start(), second.start()
        first.wait_ready(), second.wait_ready()
        wait_for("both members to serve", lambda: partitions_served(first)
                 and partitions_served(second), 90)
        split = (int(first.consumed()), int(second.consumed()))
        first.kill()
        killed_at = time.monotonic()
        owned_before = len(partitions_served(second))
        # The survivor serves every partition once the group has evicted the dead member.
        everything = 2 * sc.settings.topic_partitions
        wait_for("the survivor to take over every partition",
                 lambda: len(partitions_served(second)) == everything, 120)
        takeover_s = time.monotonic() - killed_at
        third.start()
        third.wait_ready()
        wait_for("the third member to serve", lambda: third.consumed() >= 20, 120)
        before = second.consumed()
        wait_for("the survivor to keep serving", lambda: served_since(second, before, 10), 60)
        time.sleep(5)
    finally:
        inputs = load.stop()
    try:
        counts = settle(sc.name, sc.settings.kafka_bootstrap, sc.outputs, inputs,
                        split_before_kill=f"{split[0]}/{split[1]}",
                        survivor_partitions=f"{owned_before}->{everything}",
                        takeover_s=round(takeover_s, 1),
                        survivor=int(second.consumed()), joiner=int(third.consumed()))
        assert second.proc.poll() is None and third.proc.poll() is None
    finally:
        for worker in (first, second, third):
            worker.stop()
    report(counts, sc.state_dir.parent)
    assert_no_loss(counts)
