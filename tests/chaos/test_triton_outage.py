"""Triton SIGKILLed mid-stream and restarted 15 s later; the circuit breaker in between.

While Triton is gone the worker must report not-ready (503, blockers `triton:<model>`, the
`medstream_circuit_open` gauge at 1), stop taking batches (messages_consumed flat, no busy
loop) and keep every offset; when Triton returns it resumes by itself and nothing is lost.
"""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
from processes import shm_regions

from medstream_tools.localstack import triton as local_triton
from medstream_tools.localstack.stack import triton_up
from medstream_tools.soak.accounting import assert_no_loss, report, settle
from medstream_tools.soak.load import SteadyLoad
from medstream_tools.soak.waiting import wait_for
from medstream_tools.soak.worker import http_get
from medstream_tools.top.promstats import sum_by

pytestmark = pytest.mark.chaos

OUTAGE_S = 15.0
QUIET_S = 5.0


def test_triton_killed_mid_stream_then_restarted(scenario, chaos_stack) -> None:
    sc = scenario("triton-kill")
    worker = sc.worker().start()
    load = SteadyLoad(sc.settings.kafka_bootstrap, sc.settings.scan.topic,
                      sc.settings.vitals.topic).start()
    try:
        worker.wait_ready()
        wait_for("the worker to serve", lambda: worker.consumed() >= 60, 60)
        pid = local_triton.service(chaos_stack.state_dir).pid()
        assert pid is not None
        regions = shm_regions(pid)
        os.killpg(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        for region in regions:  # what its backend stubs would have removed on a clean exit
            region.unlink(missing_ok=True)

        wait_for("/ready to answer 503", lambda: worker.ready_status() == 503, 30)
        wait_for("both breakers to open", lambda: sum_by(
            worker.metrics(), "medstream_circuit_open", "model") == {
                "scan_cnn": 1.0, "vitals_lstm": 1.0}, 30)
        consumed, cpu = worker.consumed(), worker.cpu_s()
        time.sleep(QUIET_S)
        paused_consumed, paused_cpu = worker.consumed() - consumed, worker.cpu_s() - cpu
        assert paused_consumed == 0, "the worker took new batches while Triton was down"
        assert paused_cpu < 0.5 * QUIET_S, f"busy loop: {paused_cpu:.2f} CPU-s in {QUIET_S} s"
        status, body = http_get(worker.url + "/ready")
        assert status == 503
        assert {"triton:scan_cnn", "triton:vitals_lstm"} <= set(json.loads(body)["blockers"])
        m = worker.metrics()
        assert m[("medstream_ready", ())] == 0.0
        errors = sum(sum_by(m, "medstream_inference_errors", "model").values())

        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - killed_at)))
        triton_up(chaos_stack)
        back_at = time.monotonic()
        wait_for("/ready to answer 200 again", lambda: worker.ready_status() == 200, 120)
        recovered_s = time.monotonic() - back_at
        assert sum_by(worker.metrics(), "medstream_circuit_open", "model") == {
            "scan_cnn": 0.0, "vitals_lstm": 0.0}
        time.sleep(5)
    finally:
        inputs = load.stop()
        triton_up(chaos_stack)  # whatever failed above, leave a running Triton behind
    try:
        counts = settle(sc.name, sc.settings.kafka_bootstrap, sc.outputs, inputs,
                        outage_s=round(back_at - killed_at, 1), retries=int(errors),
                        consumed_while_open=int(paused_consumed),
                        cpu_while_open_s=round(paused_cpu, 2),
                        ready_after_restart_s=round(recovered_s, 1))
        assert worker.proc is not None and worker.proc.poll() is None, "the worker died"
        assert worker.starts == 1
    finally:
        worker.stop()
    report(counts, sc.state_dir.parent)
    assert_no_loss(counts)
