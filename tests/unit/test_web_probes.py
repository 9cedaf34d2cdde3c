"""Readiness probes, event-loop health and consumer lag of every assigned partition (no services:
checks and consumer are stand-ins with the interfaces the worker uses)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from pathlib import Path
from typing import NamedTuple

from medstream_tools.soak.fixture_scans import fixture_rules
from tests.support.routing import declared_model
from worker.app import create_app
from worker.errors import reasons_for
from worker.inference.protocol import ModelInfo
from worker.metrics import Metrics
from worker.probes import LagReporter, LoopMonitor, ReadinessProbe, lag, passes, start_offset
from worker.readiness import STARTING, Readiness
from worker.settings import Settings


class Switches:
    """Answers of the dependency checks; `None` = the check raises, "hang" = never answers."""

    def __init__(self) -> None:
        self.kafka: object = True
        self.triton: object = True
        self.models: dict[str, object] = {"scan_cnn": True, "vitals_lstm": True}
        self.model_calls = 0

    async def _answer(self, value: object) -> bool:
        if value is None:
            raise ConnectionError("refused")
        if value == "hang":
            await asyncio.sleep(60)
        return bool(value)

    async def kafka_ready(self) -> bool:
        return await self._answer(self.kafka)

    async def triton_ready(self) -> bool:
        return await self._answer(self.triton)

    async def model_ready(self, model: str) -> bool:
        self.model_calls += 1
        return await self._answer(self.models[model])


def probe_of(switches: Switches) -> tuple[Readiness, ReadinessProbe, Metrics]:
    metrics = Metrics.create()
    readiness = Readiness(metrics)
    readiness.unblock(STARTING)
    probe = ReadinessProbe(readiness, triton_ready=switches.triton_ready,
                           model_ready=switches.model_ready, models=list(switches.models),
                           kafka_ready=switches.kafka_ready, timeout_s=0.05)
    return readiness, probe, metrics


def test_readiness_update_reports_changes() -> None:
    readiness = Readiness(Metrics.create())
    assert readiness.update("kafka", blocked=True) and not readiness.update("kafka", blocked=True)
    assert readiness.update("kafka", blocked=False) and not readiness.update("x", blocked=False)


async def test_passes_turns_errors_and_timeouts_into_false() -> None:
    s = Switches()
    assert await passes(s.kafka_ready, 0.05)
    s.kafka = None
    assert not await passes(s.kafka_ready, 0.05)
    s.kafka = "hang"
    assert not await passes(s.kafka_ready, 0.05)


async def test_idle_worker_turns_not_ready_when_triton_or_kafka_goes_and_back() -> None:
    s = Switches()
    readiness, probe, metrics = probe_of(s)
    await probe.run_once()
    assert readiness.ready and metrics.registry.get_sample_value("medstream_ready") == 1
    s.triton, s.kafka = None, "hang"
    s.models = {m: None for m in s.models}
    await probe.run_once()
    assert readiness.blockers == ["kafka", "triton"]  # models unknown while the server is down
    assert metrics.registry.get_sample_value("medstream_ready") == 0
    s.triton, s.kafka = True, True
    s.models["scan_cnn"] = True
    await probe.run_once()
    assert readiness.blockers == ["model:vitals_lstm"]
    s.models["vitals_lstm"] = True
    await probe.run_once()
    assert readiness.ready


async def test_probe_leaves_breaker_and_start_up_blockers_alone() -> None:
    s = Switches()
    readiness, probe, _ = probe_of(s)
    readiness.block("triton:scan_cnn")
    readiness.block(STARTING)
    await probe.run_once()
    assert readiness.blockers == [STARTING, "triton:scan_cnn"]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_loop_monitor_measures_late_wake_ups_and_a_stopped_timer() -> None:
    clock = Clock()
    loop = LoopMonitor(interval_s=1.0, max_lag_s=5.0, clock=clock)
    clock.now += 30  # faust starts timers only once the worker is up: healthy meanwhile
    assert loop.healthy and loop.lag_s == 0.0
    loop.tick()
    clock.now += 1.25
    loop.tick()
    assert loop.lag_s == 0.25 and loop.healthy
    clock.now += 7.0  # blocked for 6 s before this wake-up
    loop.tick()
    assert loop.lag_s == 6.0 and not loop.healthy
    clock.now += 1.0
    loop.tick()
    assert loop.healthy
    clock.now += 10.0  # no tick since: the timer (or the app) stopped
    assert loop.lag_s == 9.0 and not loop.healthy


def test_start_offset_prefers_the_furthest_known_position() -> None:
    assert start_offset(served=10, committed=7, position=99) == 10
    assert start_offset(served=3, committed=7, position=99) == 7  # stale after a rebalance
    assert start_offset(served=None, committed=None, position=5) == 5
    assert start_offset(None, None, None) is None
    assert lag(100, 90) == 10 and lag(5, 9) == 0 and lag(None, 3) is None and lag(7, None) is None


class TP(NamedTuple):
    topic: str
    partition: int


class FakeConsumer:
    """faust consumer surface used for lag: assignment, highwater, position, committed record."""

    def __init__(self) -> None:
        self.assigned = {TP("scans", p) for p in range(4)} | {TP("app-__assignor-__leader", 0)}
        self.highwaters = {TP("scans", 0): 50, TP("scans", 1): 40, TP("scans", 2): 30}
        self.positions = {TP("scans", 2): 25, TP("scans", 3): 0}
        self._committed_offset: dict[TP, int | None] = defaultdict(lambda: None)
        self._committed_offset[TP("scans", 0)] = 45
        self._committed_offset[TP("scans", 1)] = 12

    def assignment(self) -> set[TP]:
        return set(self.assigned)

    def highwater(self, tp: TP) -> int | None:
        return self.highwaters.get(tp)

    async def position(self, tp: TP) -> int | None:
        return self.positions[tp]


def lag_series(metrics: Metrics) -> dict[str, float]:
    return {s.labels["partition"]: s.value
            for s in metrics.consumer_lag.collect()[0].samples if s.labels["topic"] == "scans"}


async def test_lag_covers_every_assigned_partition_and_forgets_revoked_ones() -> None:
    metrics, consumer = Metrics.create(), FakeConsumer()
    served = {("scans", 0): 48}
    reporter = LagReporter(lambda: consumer, metrics.consumer_lag, ["scans"], lambda: served)
    await reporter.report()
    # p0 served beyond its commit, p1 only committed, p2 nothing yet (fetch position),
    # p3 no fetch response yet (no high watermark): no figure rather than a wrong one
    assert lag_series(metrics) == {"0": 2, "1": 28, "2": 5}
    consumer.assigned -= {TP("scans", 0)}
    consumer.highwaters[TP("scans", 3)] = 4
    await reporter.report()
    assert lag_series(metrics) == {"1": 28, "2": 5, "3": 4}
    assert {s.labels["topic"] for s in metrics.consumer_lag.collect()[0].samples} == {"scans"}


def test_create_app_exports_each_kind_and_model_from_start_up(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, kafka_bootstrap="127.0.0.1:9", web_port=6999,
                        state_dir=tmp_path, app_id="unit-app-probes",
                        routing={"rules": fixture_rules(tmp_path / "rules.yaml")})
    models = {"scan_cnn": declared_model("scan_cnn", max_batch=16),
              "vitals_lstm": ModelInfo("vitals_lstm", "1", 64)}
    metrics = Metrics.create()
    create_app(settings, models, metrics)
    value = metrics.registry.get_sample_value
    for kind, model in (("scan", "scan_cnn"), ("vitals", "vitals_lstm")):
        assert value("medstream_messages_consumed_total", {"kind": kind}) == 0
        assert value("medstream_predictions_total", {"kind": kind, "model": model}) == 0
        assert value("medstream_end_to_end_seconds_count", {"kind": kind}) == 0
        assert value("medstream_batch_size_count", {"model": model}) == 0
        assert value("medstream_inference_seconds_bucket", {"model": model, "le": "+Inf"}) == 0
        assert value("medstream_inflight_requests", {"model": model}) == 0
        assert value("medstream_circuit_open", {"model": model}) == 0
    assert value("medstream_ready") == 0  # starting
    dead = {(s.labels["kind"], s.labels["reason"]): s.value
            for s in metrics.deadletters.collect()[0].samples if s.name.endswith("_total")}
    assert dead == {(k, r.value): 0 for k in ("scan", "vitals") for r in reasons_for(k)}
    skipped = {(s.labels["kind"], s.labels["reason"]): s.value
               for s in metrics.skipped.collect()[0].samples if s.name.endswith("_total")}
    assert skipped == {("scan", r): 0 for r in ("no_route", "non_image", "rule")}  # scans route


class RacingConsumer(FakeConsumer):
    """Partition 1 is revoked between assignment() and highwater(); positions never answer."""

    def highwater(self, tp: TP) -> int | None:
        assert tp != TP("scans", 1), "Partition is not assigned"
        return super().highwater(tp)

    async def position(self, tp: TP) -> int | None:
        await asyncio.sleep(60)
        return 0


async def test_lag_survives_a_rebalance_race_and_a_silent_consumer() -> None:
    metrics, consumer = Metrics.create(), RacingConsumer()
    reporter = LagReporter(lambda: consumer, metrics.consumer_lag, ["scans"], dict, timeout_s=0.05)
    await reporter.report()
    assert lag_series(metrics) == {"0": 5}
