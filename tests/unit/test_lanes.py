"""STAT lanes in the worker (docs/lanes.md): the duty cycle, the lane stream, the lane topics,
the STAT worker process and the Triton priority of each lane."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from medstream_training.export import render_config
from worker.errors import ConfigurationError
from worker.inference.protocol import TensorSpec
from worker.kinds import KINDS, input_topics, kind_topics, stat_topics
from worker.lanes import ROUTINE, STAT, process_lane, request_priority
from worker.lanes.settings import LaneSettings
from worker.lanes.stream import LaneStream, duty_share, duty_wait
from worker.metrics import Metrics
from worker.multiprocess import child_environments
from worker.settings import Settings


def lanes(**values: Any) -> Settings:
    return Settings(_env_file=None, lanes=LaneSettings(**values))


@pytest.mark.parametrize(("busy", "idle", "weight", "wait"), [
    (0.3, 0.0, 2, 0.15),   # back to back: half the batch's time (2:1)
    (0.3, 0.1, 2, 0.05),   # part of the gap has passed already
    (0.3, 5.0, 2, 0.0),    # a STAT event after a quiet spell is never delayed
    (0.3, 0.0, 1, 0.3),    # 1:1
    (0.0, 0.0, 2, 0.0),
])
def test_duty_wait(busy: float, idle: float, weight: int, wait: float) -> None:
    assert duty_wait(busy, idle, weight) == pytest.approx(wait)


@pytest.mark.parametrize("weight", [1, 2, 3, 10])
def test_stat_never_takes_more_than_weight_over_weight_plus_one(weight: int) -> None:
    for busy in (0.001, 0.05, 0.25, 3.0):
        assert duty_share(busy, weight) == pytest.approx(weight / (weight + 1))
        assert 1 - duty_share(busy, weight) >= 1 / (weight + 1) - 1e-9  # routine's minimum
    assert duty_share(0.0, weight) == 0.0


class FakeStream:
    """The slice of a faust stream that LaneStream wraps: batches, acks."""

    def __init__(self, batches: list[list[Any]]) -> None:
        self.batches, self.acked = batches, []

    async def noack_take(self, max_: int, within: float) -> Any:
        for batch in self.batches:
            yield batch

    async def ack(self, event: Any) -> bool:
        self.acked.append(event)
        return True


def event(offset: int, timestamp: float = 0.0) -> Any:
    return SimpleNamespace(message=SimpleNamespace(topic="scans.stat", partition=0, offset=offset,
                                                   timestamp=timestamp))


class Clock:
    def __init__(self) -> None:
        self.now, self.slept = 100.0, []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_the_stat_lane_serves_one_batch_at_a_time_and_yields_after_each() -> None:
    metrics, clock = Metrics.create(), Clock()
    stream = FakeStream([[event(0), event(1)], [event(2)], [event(3)]])
    lane = LaneStream(stream, "scan", STAT, metrics, 2, clock=clock, sleep=clock.sleep)
    served: list[int] = []

    async def serve_batch(events: list[Any]) -> None:
        await asyncio.sleep(0)
        clock.now += 0.4  # the batch keeps the lane busy 0.4 s
        for e in events:
            await lane.ack(e)

    async def serve() -> None:  # as serve_stream: the next batch is taken while one is served
        tasks = []
        async for batch in lane.noack_take(8, within=0.01):
            served.append(len(batch))
            tasks.append(asyncio.create_task(serve_batch(batch)))
        await asyncio.gather(*tasks)

    asyncio.run(serve())
    assert served == [2, 1, 1]
    assert clock.slept == pytest.approx([0.2, 0.2])  # after each busy 0.4 s, 0.4 / 2
    assert len(stream.acked) == 4
    assert sample(metrics, "medstream_lane_records_total", kind="scan", lane=STAT) == 4
    assert sample(metrics, "medstream_lane_throttled_seconds_total", kind="scan") == (
        pytest.approx(0.4))


def test_the_routine_lane_counts_and_never_waits() -> None:
    metrics, clock = Metrics.create(), Clock()
    stream = FakeStream([[event(0, timestamp=1.0)], [event(1)]])
    lane = LaneStream(stream, "vitals", ROUTINE, metrics, 2, clock=clock, sleep=clock.sleep)

    async def serve() -> None:
        async for batch in lane.noack_take(8, within=0.01):
            clock.now += 1.0
            for e in batch:
                await lane.ack(e)

    asyncio.run(serve())
    assert clock.slept == []
    assert sample(metrics, "medstream_lane_records_total", kind="vitals", lane=ROUTINE) == 2
    # only the event with a Kafka timestamp has an end-to-end latency
    assert sample(metrics, "medstream_lane_end_to_end_seconds_count", kind="vitals",
                  lane=ROUTINE) == 1


def test_lane_topics_follow_the_settings() -> None:
    on = Settings(_env_file=None)
    assert stat_topics(on, KINDS) == ["scans.stat", "vitals.stat"]
    assert kind_topics(on, KINDS) == ["scans", "vitals", "scans.stat", "vitals.stat"]
    assert input_topics(on, KINDS, STAT)["vitals_lstm"] == "vitals.stat"
    off = lanes(enabled=False)
    assert stat_topics(off, KINDS) == [] and input_topics(off, KINDS, STAT) == {}
    assert kind_topics(off, KINDS) == ["scans", "vitals"]
    no_vitals = Settings(_env_file=None, vitals={"stat_topic": None})
    assert set(input_topics(no_vitals, KINDS, STAT).values()) == {"scans.stat"}
    with pytest.raises(ConfigurationError, match="share a topic: vitals"):
        kind_topics(Settings(_env_file=None, scan={"stat_topic": "vitals"}), KINDS)


def test_each_process_serves_one_lane_with_its_triton_priority() -> None:
    assert (process_lane(lanes()), request_priority(lanes())) == (ROUTINE, 2)
    assert (process_lane(lanes(process="routine")), request_priority(lanes(process="routine"))) \
        == (ROUTINE, 2)
    assert (process_lane(lanes(process="stat")), request_priority(lanes(process="stat"))) == (STAT, 1)
    off = lanes(enabled=False, process="stat")
    assert (process_lane(off), request_priority(off)) == (ROUTINE, 0)  # the model's default


def test_the_supervisor_adds_the_stat_worker_with_its_own_group_and_port(tmp_path) -> None:
    settings = Settings(_env_file=None, web_port=7000, worker_id="w", app_id="group",
                        state_dir=tmp_path)
    envs = child_environments(settings, 2, {"OTHER": "kept"}, stat=True)
    assert [e["MEDSTREAM_WEB_PORT"] for e in envs] == ["7000", "7001", "7002"]
    assert [e["MEDSTREAM_LANES__PROCESS"] for e in envs] == [ROUTINE, ROUTINE, STAT]
    assert [e["MEDSTREAM_WORKER_ID"] for e in envs] == ["w-0", "w-1", "w-stat"]
    assert [e.get("MEDSTREAM_APP_ID") for e in envs] == [None, None, "group-stat"]
    assert all(e["OTHER"] == "kept" for e in envs)
    assert len(child_environments(settings, 1, {}, stat=False)) == 1


def test_exported_model_configs_declare_two_priority_levels() -> None:
    config = render_config("m", 8, [TensorSpec("x", "FP32", (2,))], [TensorSpec("y", "FP32", (1,))],
                           {})
    assert "priority_levels: 2\n  default_priority_level: 2\n" in config
