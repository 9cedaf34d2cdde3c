"""The worker's Kafka consumer transport: faust's aiokafka driver with a configurable fetch wait.

faust-streaming 0.15 builds the worker's `AIOKafkaConsumer` with `fetch_max_wait_ms=1500`
hard-coded (`faust/transport/drivers/aiokafka.py`, `_create_worker_consumer`). A broker that
does not answer a waiting fetch as soon as a record arrives (Tansu) then holds every record
for up to that long (~400 ms p50 per hop, docs/benchmarks.md). These subclasses build the same
consumer and set its fetch wait before it starts (aiokafka reads `_fetch_max_wait_ms` in
`start()`); `create_app` installs the transport through faust's public `app.transport` setter.
Only the consumer is affected: the producer has its own transport. The thread also corrects
the end offsets faust's table recovery reads to on Tansu (`log_ends`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import aiokafka
import faust
from faust.transport.drivers import aiokafka as faust_aiokafka


class FetchWaitConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """faust's consumer thread; the worker consumer waits at most the transport's fetch wait,
    and table recovery reads changelogs to their true end (`log_ends`)."""

    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = transport.fetch_max_wait_ms  # read by AIOKafkaConsumer.start()
        return consumer

    async def _highwaters(self, partitions: list[Any]) -> Mapping[Any, int]:
        reported = await super()._highwaters(partitions)
        return await log_ends(self._create_client_consumer(self.transport), reported)


async def log_ends(consumer: aiokafka.AIOKafkaConsumer, reported: Mapping[Any, int],
                   timeout_s: float = 10.0) -> dict[Any, int]:
    """Each partition's log end: the high watermark of a fetch from the `reported` end offset.

    faust's table recovery reads a changelog up to `end_offsets()` (ListOffsets). Tansu answers
    that with the start of the last record batch, not the log end, so recovery silently dropped
    the last batch of every changelog partition (measured: a key restored at n=9 of 10).
    A fetch response's high watermark is right on every broker; `consumer` (not started, no
    group) is used once and closed.
    """
    if not reported:
        return dict(reported)
    tps = {aiokafka.TopicPartition(tp.topic, tp.partition): tp for tp in reported}
    await consumer.start()
    try:
        consumer.assign(list(tps))
        for ktp, tp in tps.items():
            consumer.seek(ktp, reported[tp])
        deadline = asyncio.get_running_loop().time() + timeout_s
        while (any(consumer.highwater(ktp) is None for ktp in tps)
               and asyncio.get_running_loop().time() < deadline):
            await consumer.getmany(timeout_ms=100)
        return {tp: max(reported[tp], consumer.highwater(ktp) or 0) for ktp, tp in tps.items()}
    finally:
        await consumer.stop()


class FetchWaitConsumer(faust_aiokafka.Consumer):
    """faust's aiokafka consumer running a FetchWaitConsumerThread."""

    def _new_consumer_thread(self) -> FetchWaitConsumerThread:
        return FetchWaitConsumerThread(self, loop=self.loop, beacon=self.beacon)


class FetchWaitTransport(faust_aiokafka.Transport):
    """faust's aiokafka transport whose worker consumer uses `fetch_max_wait_ms`."""

    Consumer = FetchWaitConsumer

    def __init__(self, url: Any, app: faust.App, *, fetch_max_wait_ms: int, **kwargs: Any) -> None:
        super().__init__(url, app, **kwargs)
        self.fetch_max_wait_ms = fetch_max_wait_ms


def install_fetch_wait(app: faust.App, fetch_max_wait_ms: int) -> None:
    """Give `app` a consumer transport whose worker consumer waits at most `fetch_max_wait_ms`.

    Call right after constructing the app, before anything touches `app.transport`.
    """
    app.transport = FetchWaitTransport(app.conf.broker_consumer, app,
                                       fetch_max_wait_ms=fetch_max_wait_ms)
