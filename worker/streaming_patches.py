"""Every patch of faust/aiokafka internals the worker applies, in one place, pinned.

Written for faust-streaming 0.15.3, mode-streaming 0.7.1 and aiokafka 0.14.0 (`PINNED`).
`UPSTREAM_SHA256` holds a hash of the source of each upstream function these patches rely on;
tests/unit/test_streaming_patches.py fails when an upgrade changes one, and `install` leaves
the per-message fast path out (logging why) when the running source differs.

1. **Fetch wait.** faust builds the worker's `AIOKafkaConsumer` with `fetch_max_wait_ms=1500`
   hard-coded (`faust/transport/drivers/aiokafka.py`, `_create_worker_consumer`). A broker
   that does not answer a waiting fetch as soon as a record arrives (Tansu) then holds every
   record that long. The consumer thread below sets it to the worker's setting before the
   consumer starts (aiokafka reads `_fetch_max_wait_ms` in `start()`).
2. **Per-message task fan-out.** faust's fetch loop hands each message to the stream with
   `await self.wait_first(callback(message), self.suspend_flow.wait())`
   (`faust/transport/consumer.py`, `Consumer._drain_messages`); mode's `wait_first` wraps the
   callback, the suspend event and the service's stopped/crashed events in four tasks and
   cancels three: ~75 us per message. `FastWaitConsumer.wait_first` runs the callback's first
   step inline; when it completes without suspending (the stream's buffer has room: the usual
   case) that is the whole call, as if the callback's task had won at once. When it suspends
   (buffer full: back-pressure), when the flow is already suspended or the service stopping,
   the rest goes through mode's `wait_first` unchanged, so suspension and shutdown still
   abandon a blocked callback exactly as before. Acks, commits and ordering are untouched.
3. **Changelog ends.** faust's table recovery reads each changelog to `_highwaters()`
   (ListOffsets), which Tansu answers with the start of the last batch; the consumer thread
   corrects them with a fetch's high watermark (`worker/changelog_ends.py`), so a restored
   table loses nothing (tests/integration/test_studies_restart.py).
4. **Pauses lose nothing.** `Consumer.getmany` delivers a fetched batch record by record and
   drops the records of a partition that is no longer in the LIVE active-partition set (the
   set `_wait_next_records` returns is the consumer's own, which `pause_partitions` mutates).
   The fetch position has already moved past them, so after a resume the next record looks
   like a gap, which `_drain_messages` adds to the acked offsets (`_add_gap`): the skipped
   records were committed unprocessed. The circuit breaker pauses mid-batch exactly so.
   `_wait_next_records` returns a copy instead: the batch already fetched is delivered whole
   and the pause applies from the next fetch (tests/unit/test_streaming_patches.py).
5. **A stop without a broker.** With the broker gone, aiokafka's fetch requests fail and sleep
   out a retry backoff; `Fetcher.close` cancels them and awaits each without catching the
   `CancelledError` (`aiokafka/consumer/fetcher.py`), so the consumer thread's stop raises
   it, and mode's `ServiceThread._start_thread` only reports the shutdown of a thread that
   ended with an `Exception`: the worker waited `shutdown_timeout` (60 s) for a thread long
   gone. The consumer thread's `on_thread_stop` takes that stray cancellation as the end of
   the close (its own cancellation still propagates), so the shutdown is reported at once.

The transport is installed through faust's public `app.transport` setter; the producer keeps
its own transport.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
import types
from collections.abc import Callable, Generator, Mapping
from importlib.metadata import version
from typing import Any

import aiokafka
import faust
import mode
from aiokafka.consumer.fetcher import Fetcher
from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as faust_aiokafka
from mode.services import WaitResults
from mode.threads import ServiceThread

from worker.changelog_ends import log_ends

log = logging.getLogger(__name__)

PINNED = {"faust-streaming": "0.15.3", "mode-streaming": "0.7.1", "aiokafka": "0.14.0"}

# sha256 of inspect.getsource(...) of what the patches rely on, at the PINNED versions
UPSTREAM_SHA256 = {
    "faust.transport.drivers.aiokafka.AIOKafkaConsumerThread._create_worker_consumer":
        "c2701bfc3e6f6cad95c2be36d6a255a86e2c57d18d36cc1082b5fb5c482d99d7",
    "faust.transport.consumer.Consumer._drain_messages":
        "44a2500309e83c630493f6828af50166ec8d96a0b3e4fb2bab735f704ae93417",
    "mode.services.Service.wait_first":
        "feade6a31f8a67897cf687c54c66f5f4535288050bbaac07249ce2063d36ae2e",
    "faust.transport.drivers.aiokafka.AIOKafkaConsumerThread._highwaters":
        "a7f4f97d9f32aca2777713e22671d70eae4b3ae51541bb09a90448ce83acefce",
    "faust.transport.consumer.Consumer.getmany":
        "4b168d84882a70d6e3e2f9804430a63b92f8fd117d3187cbb4aeb54305bda34e",
    "faust.transport.consumer.Consumer._wait_next_records":
        "6218e1969a636b3ff504ad1b8e7ad58a113572e43d746cc96d684ed5153032c6",
    "faust.transport.consumer.Consumer.pause_partitions":
        "27a1c94bdacd54de06593ec4eb040b32e9e7c9534e9af041f6ed66723df5f922",
    "faust.transport.drivers.aiokafka.AIOKafkaConsumerThread.on_thread_stop":
        "8dfc004e258b6c25edd2b0986531aea0fc75dd5cef0d0718c87848af33c6f757",
    "aiokafka.consumer.fetcher.Fetcher.close":
        "1cd24bc1c442149e7d9a4ddef0770f4aa1272c60c4c7f2a89ab7a50e4444d44b",
    "mode.threads.ServiceThread._start_thread":
        "a06373478446fb6192a52e3884096299d569633973bf57e528108c449478f173",
}


def _upstream() -> dict[str, Callable[..., Any]]:
    return {
        "faust.transport.drivers.aiokafka.AIOKafkaConsumerThread._create_worker_consumer":
            faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer,
        "faust.transport.consumer.Consumer._drain_messages":
            faust_consumer.Consumer._drain_messages,
        "mode.services.Service.wait_first": mode.Service.wait_first,
        "faust.transport.drivers.aiokafka.AIOKafkaConsumerThread._highwaters":
            faust_aiokafka.AIOKafkaConsumerThread._highwaters,
        "faust.transport.consumer.Consumer.getmany": faust_consumer.Consumer.getmany,
        "faust.transport.consumer.Consumer._wait_next_records":
            faust_consumer.Consumer._wait_next_records,
        "faust.transport.consumer.Consumer.pause_partitions":
            faust_consumer.Consumer.pause_partitions,
        "faust.transport.drivers.aiokafka.AIOKafkaConsumerThread.on_thread_stop":
            faust_aiokafka.AIOKafkaConsumerThread.on_thread_stop,
        "aiokafka.consumer.fetcher.Fetcher.close": Fetcher.close,
        "mode.threads.ServiceThread._start_thread": ServiceThread._start_thread,
    }


def source_sha256(func: Callable[..., Any]) -> str:
    """sha256 of a function's source text."""
    return hashlib.sha256(inspect.getsource(func).encode()).hexdigest()


def upstream_changes() -> list[str]:
    """What differs from the versions and sources the patches were written for."""
    changed = [f"{name} {version(name)} (written for {pin})" for name, pin in PINNED.items()
               if version(name) != pin]
    changed += [name for name, func in _upstream().items()
                if source_sha256(func) != UPSTREAM_SHA256[name]]
    return changed


@types.coroutine
def _resume(coro: Any, yielded: Any) -> Generator[Any, Any, Any]:
    """Drive `coro` on from its first suspension (`yielded`), exactly as its Task would have."""
    while True:
        try:
            sent = yield yielded
        except BaseException as exc:  # noqa: BLE001 - cancellation etc. are thrown into `coro`
            try:
                yielded = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                yielded = coro.send(sent)
            except StopIteration as stop:
                return stop.value


async def _rest(coro: Any, yielded: Any) -> Any:
    """The remainder of a suspended coroutine as a new (awaitable) coroutine."""
    return await _resume(coro, yielded)


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

    async def on_thread_stop(self) -> None:
        try:
            await super().on_thread_stop()
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():  # this task's own cancellation
                raise
            log.warning("consumer closed with a fetch request still retrying (broker gone?)")


class FetchWaitConsumer(faust_aiokafka.Consumer):
    """faust's aiokafka consumer running a FetchWaitConsumerThread; a fetched batch is
    delivered whole, whatever is paused while it is (patch 4)."""

    def _new_consumer_thread(self) -> FetchWaitConsumerThread:
        return FetchWaitConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _wait_next_records(self, timeout: float) -> tuple[Any, set[Any] | None]:
        records, active = await super()._wait_next_records(timeout)
        return records, None if active is None else set(active)  # the fetch's own set


class FastWaitConsumer(FetchWaitConsumer):
    """FetchWaitConsumer whose per-message `wait_first` skips the task fan-out when it can."""

    async def wait_first(self, *coros: Any, timeout: Any = None) -> WaitResults:
        first = coros[0] if coros else None
        if (not inspect.iscoroutine(first) or self.suspend_flow.is_set()
                or self._stopped.is_set() or self._crashed.is_set()):
            return await super().wait_first(*coros, timeout=timeout)
        try:
            yielded = first.send(None)
        except StopIteration as done:  # completed without suspending: the whole call
            _close(coros[1:])
            return WaitResults([first], [done.value], False)
        except BaseException:
            _close(coros[1:])
            raise
        return await super().wait_first(_rest(first, yielded), *coros[1:], timeout=timeout)


def _close(awaitables: tuple[Any, ...]) -> None:
    """Close coroutines that will never run (no 'never awaited' warning)."""
    for other in awaitables:
        if inspect.iscoroutine(other):
            other.close()


class PatchedTransport(faust_aiokafka.Transport):
    """faust's aiokafka transport with the worker's consumer (fetch wait, fast wait_first)."""

    Consumer = FastWaitConsumer

    def __init__(self, url: Any, app: faust.App, *, fetch_max_wait_ms: int,
                 **kwargs: Any) -> None:
        super().__init__(url, app, **kwargs)
        self.fetch_max_wait_ms = fetch_max_wait_ms


class FetchWaitTransport(PatchedTransport):
    """The fetch-wait patch alone (the fast path left out: upstream differs)."""

    Consumer = FetchWaitConsumer


def install(app: faust.App, fetch_max_wait_ms: int, *, fast_wait: bool = True) -> None:
    """Give `app` the patched consumer transport; call before anything touches `app.transport`.

    The per-message fast path is left out when `fast_wait` is off or upstream has changed.
    """
    changed = upstream_changes()
    if fast_wait and changed:
        log.warning("faust/aiokafka differ from what the streaming patches were written for "
                    "(%s): per-message fast path off", "; ".join(changed))
    cls = PatchedTransport if fast_wait and not changed else FetchWaitTransport
    app.transport = cls(app.conf.broker_consumer, app, fetch_max_wait_ms=fetch_max_wait_ms)

