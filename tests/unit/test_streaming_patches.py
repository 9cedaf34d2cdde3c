"""worker/streaming_patches.py: pinned upstream, the fetch wait, the per-message fast path."""

from __future__ import annotations

import asyncio
import warnings

import pytest

from worker import streaming_patches
from worker.app import _faust_app
from worker.settings import Settings
from worker.streaming_patches import (
    FastWaitConsumer,
    FetchWaitConsumer,
    FetchWaitTransport,
    PatchedTransport,
)


def test_upstream_is_what_the_patches_were_written_for() -> None:
    # Fails on an upgrade of faust-streaming / mode-streaming / aiokafka, or when the source of
    # a patched function changes: re-read the patches against the new code, then update
    # PINNED and UPSTREAM_SHA256.
    assert streaming_patches.upstream_changes() == []


async def test_worker_consumer_uses_the_configured_fetch_wait(tmp_path) -> None:
    settings = Settings(consumer_fetch_wait_ms=35, state_dir=tmp_path)
    app = _faust_app(settings)
    assert isinstance(app.transport, PatchedTransport)
    consumer = app.consumer
    assert isinstance(consumer, FastWaitConsumer)
    aiokafka_consumer = consumer._thread._create_worker_consumer(app.transport)
    try:
        assert aiokafka_consumer._fetch_max_wait_ms == 35
        assert aiokafka_consumer._max_partition_fetch_bytes == settings.producer_max_request_size
        assert aiokafka_consumer._check_crcs is True
    finally:
        await aiokafka_consumer._client.close()


def test_settings_turn_the_fast_path_and_crc_checks_off(tmp_path) -> None:
    app = _faust_app(Settings(state_dir=tmp_path, streaming_patches=False,
                              consumer_check_crcs=False))
    assert type(app.transport) is FetchWaitTransport
    assert type(app.consumer) is FetchWaitConsumer
    assert app.conf.broker_check_crcs is False


def test_the_producer_keeps_faust_transport(tmp_path) -> None:
    app = _faust_app(Settings(state_dir=tmp_path))
    assert not isinstance(app.producer_transport, PatchedTransport)


@pytest.fixture
async def consumer(tmp_path) -> FastWaitConsumer:
    # built on the test's running loop: mode's wait_first schedules its tasks on the app's loop
    return _faust_app(Settings(state_dir=tmp_path)).consumer


async def _never() -> None:
    await asyncio.Event().wait()


async def test_a_callback_that_does_not_suspend_is_the_whole_call(consumer) -> None:
    async def callback() -> str:
        return "delivered"

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the unused suspend waiter is closed, not leaked
        result = await consumer.wait_first(callback(), _never())
    assert result.results == ["delivered"] and not result.stopped


async def test_a_suspended_callback_resumes_and_returns(consumer) -> None:
    room = asyncio.Event()

    async def callback() -> str:
        await room.wait()  # the stream's buffer is full
        await asyncio.sleep(0)
        return "delivered"

    waiting = asyncio.ensure_future(consumer.wait_first(callback(), _never()))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    room.set()
    assert (await waiting).results == ["delivered"]


async def test_suspending_the_flow_abandons_a_blocked_callback(consumer) -> None:
    cancelled = asyncio.Event()

    async def callback() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    waiting = asyncio.ensure_future(consumer.wait_first(callback(), consumer.suspend_flow.wait()))
    await asyncio.sleep(0.01)
    consumer.suspend_flow.set()
    result = await waiting
    assert result.results == [True] and not result.stopped
    await asyncio.wait_for(cancelled.wait(), 5)


async def test_a_suspended_flow_takes_faust_path(consumer) -> None:
    consumer.suspend_flow.set()
    ran = []

    async def callback() -> None:
        ran.append(True)

    await consumer.wait_first(callback(), consumer.suspend_flow.wait())
    await asyncio.sleep(0)
    assert ran == [True]


async def test_a_failing_callback_raises_its_error(consumer) -> None:
    async def callback() -> None:
        raise KeyError("boom")

    with pytest.raises(KeyError):
        await consumer.wait_first(callback(), _never())

    async def later() -> None:
        await asyncio.sleep(0)
        raise KeyError("later")

    with pytest.raises(KeyError):
        await consumer.wait_first(later(), _never())


async def test_a_partition_paused_mid_delivery_still_delivers_what_was_fetched(consumer) -> None:
    # faust 0.15.3 compares each fetched record with the LIVE active-partition set: records of a
    # partition paused while a fetched batch is delivered were skipped, the fetch position had
    # moved past them, and the next offset delivered looked like a gap that faust commits past
    # (lost). The patched consumer delivers the whole batch; the pause applies from the next fetch.
    from aiokafka.structs import ConsumerRecord
    from faust.types import TP

    first, second = TP("scans", 0), TP("scans", 1)

    def records(tp: TP) -> list[ConsumerRecord]:
        return [ConsumerRecord(tp.topic, tp.partition, offset, 0, 0, None, b"v", None, 1, 1, [])
                for offset in range(3)]

    fetched = {first: records(first), second: records(second)}
    consumer._active_partitions = {first, second}

    async def getmany(active_partitions, timeout):  # the aiokafka fetch, already done
        return {tp: batch for tp, batch in fetched.items() if tp in active_partitions}

    consumer._getmany = getmany
    consumer.highwater = lambda tp: 3
    delivered = []
    async for tp, message in consumer.getmany(timeout=0):
        delivered.append((tp, message.offset))
        consumer.pause_partitions({first, second})  # e.g. the circuit breaker opens
    assert sorted(delivered) == [(tp, o) for tp in (first, second) for o in range(3)]
    assert await consumer._wait_next_records(0) == ({}, set())  # paused from the next fetch on
