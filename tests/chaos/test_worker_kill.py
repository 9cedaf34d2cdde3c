"""A worker SIGKILLed mid-batch and restarted: the uncommitted batches are re-delivered.

The worker serves the `*_slow` models (1.2-2.4 s per request) so that the kill lands while a
batch is provably in flight (`medstream_inflight_requests` > 0 just before it); scan batches
mix rows for the slow and the fast fixture model, and skips (CT, MR, NM samples). Both STAT lanes
are on and fed (every third input goes to a STAT topic): the kill takes the routine and the STAT
worker down together, and neither lane may lose an input.
"""

from __future__ import annotations

import time

import pytest
from chaos_stack import WEB_PORT, routing_rules

from medstream_tools.soak.accounting import assert_no_loss, report, settle
from medstream_tools.soak.load import SteadyLoad
from medstream_tools.soak.waiting import wait_for
from medstream_tools.soak.worker import http_get
from medstream_tools.top.promstats import parse_metrics, sum_by

pytestmark = pytest.mark.chaos


def stat_served() -> float:
    """Inputs the STAT worker (the next web port, docs/lanes.md) has served and acked."""
    try:
        body = http_get(f"http://127.0.0.1:{WEB_PORT + 1}/metrics")[1].decode()
    except OSError:
        return 0.0
    samples = parse_metrics(body, time.monotonic()).samples
    return sum(sum_by(samples, "medstream_lane_records", "kind").values())


def in_flight(worker) -> float:
    return sum(sum_by(worker.metrics(), "medstream_inflight_requests", "model").values())


def test_worker_sigkilled_mid_batch_then_restarted_loses_nothing(scenario) -> None:
    # PA chest radiographs to the slow model, AP to the fast one: batches hold rows for both
    # both STAT lanes on: the kill takes the routine and the STAT worker down together
    sc = scenario("worker-kill", ROUTING__RULES=routing_rules("scan_cnn_slow", "scan_cnn"),
                  VITALS_MODEL="vitals_lstm_slow", LANES__ENABLED="true")
    worker = sc.worker().start()
    stat_topics = {"scan": sc.settings.scan.stat_topic, "vitals": sc.settings.vitals.stat_topic}
    load = SteadyLoad(sc.settings.kafka_bootstrap, sc.settings.scan.topic,
                      sc.settings.vitals.topic,
                      stat_topics={k: v for k, v in stat_topics.items() if v}).start()
    try:
        worker.wait_ready()
        wait_for("the worker to serve", lambda: worker.consumed() >= 60, 60)
        wait_for("the STAT worker to serve", lambda: stat_served() > 0, 60)
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
