"""Kafka load generation (pre-fill, paced open-loop) and a collector for predictions.

All times are wall-clock seconds (`time.time()`), comparable with Kafka record timestamps.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from medstream_tools.bench.corpus import Message

_SEND_WINDOW = 2000  # outstanding sends before awaiting their acks


def _producer(bootstrap: str, max_bytes: int) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=5,
        max_request_size=max_bytes + 64 * 1024,
        max_batch_size=1024 * 1024,
        request_timeout_ms=60_000,
    )


async def prefill(bootstrap: str, topic: str, messages: Sequence[Message], max_bytes: int) -> float:
    """Publish all messages and wait for every ack; returns the wall time of the last ack."""
    producer = _producer(bootstrap, max_bytes)
    await producer.start()
    try:
        pending = []
        for msg in messages:
            pending.append(await producer.send(topic, msg.value, key=msg.key))
            if len(pending) >= _SEND_WINDOW:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
        return time.time()
    finally:
        await producer.stop()


async def paced(
    bootstrap: str, topic: str, messages: Sequence[Message], rate: float, max_bytes: int
) -> dict[str, float]:
    """Open-loop load: message i is due at t0 + i/rate, whatever the worker does.

    Returns event id -> intended send time. Latency is measured from the intended time, so a
    stalled sender does not hide queueing (no coordinated omission).
    """
    producer = _producer(bootstrap, max_bytes)
    await producer.start()
    intended: dict[str, float] = {}
    try:
        pending = []
        t0_mono, t0_wall = time.monotonic() + 0.05, time.time() + 0.05
        for index, msg in enumerate(messages):
            due = index / rate
            delay = t0_mono + due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            intended[msg.event_id] = t0_wall + due
            pending.append(await producer.send(topic, msg.value, key=msg.key))
        await asyncio.gather(*pending)
        return intended
    finally:
        await producer.stop()


@dataclass
class Arrival:
    """One prediction as the collector saw it."""

    produced_at: float  # Kafka record timestamp (set by the worker's producer), seconds
    received_at: float  # when this consumer got it, seconds


@dataclass
class Collector:
    """Reads predictions and dead letters from the beginning of their topics, without a group.

    Predictions are keyed by event id; dead letters keep the input's key, so they are counted.
    """

    bootstrap: str
    predictions_topic: str
    deadletter_topic: str | None = None
    fetch_max_wait_ms: int = 20
    watch: Callable[[], None] | None = None  # called while waiting; raises to abort the wait
    keep_values: bool = False  # keep every record's value by key (re-deliveries too)
    arrivals: dict[str, Arrival] = field(default_factory=dict)
    values: dict[str, list[bytes]] = field(default_factory=dict)
    duplicates: int = 0
    deadletters: int = 0
    _task: asyncio.Task | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> None:
        """Assign every partition of the topics (from offset 0) and start reading."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, enable_auto_commit=False,
            auto_offset_reset="earliest", fetch_max_wait_ms=self.fetch_max_wait_ms,
        )
        await consumer.start()
        parts = []
        for topic in filter(None, (self.predictions_topic, self.deadletter_topic)):
            for _ in range(100):
                found = consumer.partitions_for_topic(topic)
                if found:
                    break
                await consumer.force_metadata_update()
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError(f"topic {topic!r} not found on {self.bootstrap}")
            parts += [TopicPartition(topic, p) for p in found]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        self._task = asyncio.create_task(self._run(consumer))

    async def _run(self, consumer: AIOKafkaConsumer) -> None:
        try:
            while True:
                batches = await consumer.getmany(timeout_ms=100, max_records=5000)
                now = time.time()
                for tp, records in batches.items():
                    if tp.topic == self.deadletter_topic:
                        self.deadletters += len(records)
                        continue
                    for rec in records:
                        key = (rec.key or b"").decode("utf-8", "replace")
                        if self.keep_values:
                            self.values.setdefault(key, []).append(rec.value)
                        if key in self.arrivals:
                            self.duplicates += 1
                            continue
                        self.arrivals[key] = Arrival(rec.timestamp / 1000.0, now)
                if batches:
                    self._changed.set()
        finally:
            await consumer.stop()

    async def wait_for(self, event_ids: Sequence[str], timeout_s: float) -> int:
        """Wait until every id has a prediction or a dead letter may account for it (or the
        timeout); returns how many ids have no prediction."""
        wanted = set(event_ids)

        def missing() -> int:
            return len(wanted - self.arrivals.keys())

        await self._wait(lambda: missing() <= self.deadletters, timeout_s)
        return missing()

    async def wait_count(self, count: int, timeout_s: float) -> bool:
        """Wait until at least `count` predictions arrived; False on timeout."""
        return await self._wait(lambda: len(self.arrivals) >= count, timeout_s)

    async def _wait(self, done: Callable[[], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if done():
                return True
            if remaining <= 0:
                return False
            if self.watch is not None:
                self.watch()
            if self._task is not None and self._task.done():
                self._task.result()  # surface the reader's exception
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), min(remaining, 1.0))
            except TimeoutError:
                pass

    async def stop(self) -> None:
        """Stop reading."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass


async def hop_latency(bootstrap: str, topic: str, rate: float, count: int,
                      fetch_waits_ms: tuple[int, ...]) -> dict[int, list[float]]:
    """One produce -> consume hop through the broker, paced, for consumers with different
    `fetch_max_wait_ms` reading at the same time; milliseconds per message by fetch wait."""
    collectors = {wait: Collector(bootstrap, topic, fetch_max_wait_ms=wait) for wait in fetch_waits_ms}
    for collector in collectors.values():
        await collector.start()
    try:
        messages = [Message(f"hop-{i}", f"hop-{i}".encode(), bytes(100)) for i in range(count)]
        intended = await paced(bootstrap, topic, messages, rate, 1024 * 1024)
        out = {}
        for wait, collector in collectors.items():
            await collector.wait_for(list(intended), 30.0)
            out[wait] = [(collector.arrivals[i].received_at - t0) * 1e3
                         for i, t0 in intended.items() if i in collector.arrivals]
        return out
    finally:
        for collector in collectors.values():
            await collector.stop()
