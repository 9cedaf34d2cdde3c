"""A worker SIGKILLed mid-batch and restarted: the uncommitted batches are re-delivered.

The worker serves the `*_slow` models (1.2-2.4 s per request) so that the kill lands while a
batch is provably in flight (`medstream_inflight_requests` > 0 just before it); scan batches
mix rows for the slow and the fast fixture model, and skips (CT, MR, NM samples).
"""

from __future__ import annotations

import time

import pytest
from chaos_stack import routing_rules

from medstream_tools.soak.accounting import assert_no_loss, report, settle
from medstream_tools.soak.load import SteadyLoad
from medstream_tools.soak.waiting import wait_for
from medstream_tools.top.promstats import sum_by

pytestmark = pytest.mark.chaos


def in_flight(worker) -> float:
    return sum(sum_by(worker.metrics(), "medstream_inflight_requests", "model").values())


def test_worker_sigkilled_mid_batch_then_restarted_loses_nothing(scenario) -> None:
    # PA chest radiographs to the slow model, AP to the fast one: batches hold rows for both
    sc = scenario("worker-kill", ROUTING__RULES=routing_rules("scan_cnn_slow", "scan_cnn"),
                  VITALS_MODEL="vitals_lstm_slow")
    worker = sc.worker().start()
    load = SteadyLoad(sc.settings.kafka_bootstrap, sc.settings.scan.topic,
                      sc.settings.vitals.topic).start()
    try:
        worker.wait_ready()
        wait_for("the worker to serve", lambda: worker.consumed() >= 60, 60)
        wait_for("a batch in flight", lambda: in_flight(worker) > 0, 30, 0.05)
        consumed_before = worker.consumed()
        worker.kill()  # with batches in flight: the load keeps coming at ~13 msg/s
        killed_at = time.monotonic()
        time.sleep(3)
        worker.start()
        worker.wait_ready()
        wait_for("the restarted worker to serve", lambda: worker.consumed() > 0, 90)
        resumed_s = time.monotonic() - killed_at
        time.sleep(5)
    finally:
        inputs = load.stop()
    try:
        counts = settle(sc.name, sc.settings.kafka_bootstrap, sc.outputs, inputs,
                        consumed_before_kill=int(consumed_before),
                        resumed_after_s=round(resumed_s, 1))
    finally:
        worker.stop()
    report(counts, sc.state_dir.parent)
    assert_no_loss(counts)
