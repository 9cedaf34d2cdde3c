"""Triton slow: every request takes 1.2-2.4 s against a 2 s client timeout (the `*_slow` models).

The load outruns the models for a while, so the backlog waits in Kafka (lag), not in the
worker: RSS stays bounded, timed-out requests are retried (never dropped), nothing is lost.
"""

from __future__ import annotations

import time

import pytest
from chaos_stack import routing_rules

from medstream_tools.soak.accounting import assert_no_loss, report, settle
from medstream_tools.soak.load import SteadyLoad
from medstream_tools.top.promstats import sum_by

pytestmark = pytest.mark.chaos

LOAD_S = 20.0
RSS_GROWTH_LIMIT_MIB = 150.0


def test_slow_triton_applies_back_pressure_with_bounded_memory(scenario) -> None:
    sc = scenario("triton-slow", ROUTING__RULES=routing_rules("scan_cnn_slow"),
                  VITALS_MODEL="vitals_lstm_slow",
                  TRITON_TIMEOUT_S="2")
    worker = sc.worker().start()
    worker.wait_ready()
    baseline = worker.rss_mib()
    load = SteadyLoad(sc.settings.kafka_bootstrap, sc.settings.scan.topic,
                      sc.settings.vitals.topic, vitals_per_s=50, scans_per_s=8).start()
    rss, lag = [baseline], [0.0]
    try:
        started = time.monotonic()
        while time.monotonic() - started < LOAD_S:
            time.sleep(1)
            rss.append(worker.rss_mib())
            lag.append(sum(sum_by(worker.metrics(), "medstream_consumer_lag", "topic").values()))
    finally:
        inputs = load.stop()
    try:
        counts = settle(sc.name, sc.settings.kafka_bootstrap, sc.outputs, inputs, timeout_s=240,
                        rss_mib=f"{baseline:.0f}->{max(rss):.0f}", max_lag=int(max(lag)))
        m = worker.metrics()
        assert worker.proc is not None and worker.proc.poll() is None, "the worker died"
    finally:
        worker.stop()
    timeouts = sum(v for (name, labels), v in m.items() if name == "medstream_inference_errors"
                   and ("code", "DEADLINE_EXCEEDED") in labels)
    fast = sum_by({k: v for k, v in m.items() if ("le", "1.0") in k[1]},
                  "medstream_inference_seconds_bucket", "model")
    served = sum_by(m, "medstream_inference_seconds_count", "model")
    counts.extra.update(deadline_exceeded=int(timeouts), requests=int(sum(served.values())))
    report(counts, sc.state_dir.parent)
    assert_no_loss(counts)
    assert served and not any(fast.values()), f"some requests were not slow: {fast}"
    assert max(rss) - baseline < RSS_GROWTH_LIMIT_MIB, f"RSS grew {baseline:.0f}->{max(rss):.0f} MiB"
    assert max(lag) > 0, "the load never outran the slow model: no back-pressure was tested"
