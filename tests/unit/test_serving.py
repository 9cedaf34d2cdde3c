"""The batch loop: produce, await every delivery, only then ack; fail-stop without acks."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import pytest

from tests.support.fake_backend import FakeBackend, toy_kind
from worker.metrics import Metrics
from worker.serving import BatchServer, record_of, serve_stream


def event(offset: int, value: bytes, partition: int = 0) -> Any:
    message = SimpleNamespace(topic="scans", partition=partition, offset=offset, key=b"k%d" % offset,
                              value=value, timestamp=1_700_000_000.0,
                              headers=[("content-type", b"text/plain")])
    return SimpleNamespace(message=message)


class Sink:
    """A topic whose delivery futures the test resolves (or fails) by hand."""

    def __init__(self, log: list[str], name: str) -> None:
        self.log, self.name = log, name
        self.sent: list[dict[str, Any]] = []
        self.futures: list[asyncio.Future[Any]] = []

    async def send(self, *, key: bytes | None, value: bytes, headers: Any = None) -> asyncio.Future[Any]:
        self.sent.append({"key": key, "value": value, "headers": headers})
        self.log.append(f"send:{self.name}")
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.futures.append(fut)
        return fut


def server(log: list[str], metrics: Metrics | None = None) -> tuple[BatchServer, Sink, Sink]:
    kind = toy_kind()
    preds, dead = Sink(log, "predictions"), Sink(log, "deadletter")
    return BatchServer(kind, FakeBackend(), metrics or Metrics.create(), predictions=preds,
                       deadletter=dead, worker_id="w-test"), preds, dead


async def test_acks_happen_only_after_every_delivery_resolves() -> None:
    log: list[str] = []
    metrics = Metrics.create()
    srv, preds, dead = server(log, metrics)
    events = [event(0, b"a:0.1"), event(1, b"junk"), event(2, b"c:0.3")]

    async def ack(e: Any) -> None:
        log.append(f"ack:{e.message.offset}")

    task = asyncio.create_task(srv.serve(events, ack=ack))
    while len(preds.futures) + len(dead.futures) < 3:
        await asyncio.sleep(0)
    for _ in range(5):
        await asyncio.sleep(0)
    assert not any(entry.startswith("ack") for entry in log)
    for fut in preds.futures + dead.futures:
        fut.set_result("metadata")
    await task
    assert log[-3:] == ["ack:0", "ack:1", "ack:2"]
    assert [s["key"] for s in preds.sent] == [b"a", b"c"]
    assert json.loads(preds.sent[0]["value"])["event_id"] == "a"
    assert dead.sent[0]["key"] == b"k1" and dead.sent[0]["value"] == b"junk"
    assert dict(dead.sent[0]["headers"])["error.type"] == b"json_decode"
    assert srv.positions == {("scans", 0): 3}
    value = metrics.registry.get_sample_value
    assert value("medstream_predictions_total", {"kind": "scan", "model": "scan_cnn"}) == 2
    assert value("medstream_deadletters_total", {"kind": "scan", "reason": "json_decode"}) == 1


async def test_a_failed_delivery_acks_nothing() -> None:
    log: list[str] = []
    srv, preds, _ = server(log)
    acked: list[Any] = []

    async def ack(e: Any) -> None:
        acked.append(e)

    task = asyncio.create_task(srv.serve([event(0, b"a:0.1"), event(1, b"b:0.2")], ack=ack))
    while len(preds.futures) < 2:
        await asyncio.sleep(0)
    preds.futures[0].set_result("metadata")
    preds.futures[1].set_exception(RuntimeError("MessageSizeTooLarge"))
    with pytest.raises(RuntimeError):
        await task
    assert acked == []


class Stream:
    """The two things serve_stream uses of a faust stream."""

    def __init__(self, batches: list[list[Any]]) -> None:
        self.batches, self.acked = batches, []
        self.taken: list[tuple[int, float]] = []

    async def noack_take(self, max_: int, within: float):
        self.taken.append((max_, within))
        for batch in self.batches:
            yield batch

    async def ack(self, e: Any) -> bool:
        self.acked.append(e.message.offset)
        return True


async def test_unexpected_errors_fail_stop_without_acking() -> None:
    class Exploding(BatchServer):
        async def serve(self, events: Any, ack: Any) -> None:
            raise KeyError("bug")

    srv, _, _ = server([])
    exploding = Exploding(srv.kind, FakeBackend(), Metrics.create(), predictions=Sink([], "p"),
                          deadletter=Sink([], "d"), worker_id="w")
    stream, stops = Stream([[event(0, b"a:1")], [event(1, b"b:1")]]), []
    await serve_stream(stream, exploding, 8, 0.05, on_fatal=lambda: stops.append(1))
    assert stops == [1] and stream.acked == [] and stream.taken == [(8, 0.05)]


async def test_serve_stream_acks_every_batch() -> None:
    log: list[str] = []
    srv, preds, dead = server(log)

    async def deliver() -> None:
        while True:
            for fut in preds.futures + dead.futures:
                if not fut.done():
                    fut.set_result("metadata")
            await asyncio.sleep(0)

    stream = Stream([[event(0, b"a:1"), event(1, b"bad")], [event(2, b"c:1")]])
    delivering = asyncio.create_task(deliver())
    await serve_stream(stream, srv, 8, 0.05, on_fatal=lambda: pytest.fail("fail-stop"))
    delivering.cancel()
    assert stream.acked == [0, 1, 2]


def test_record_of_normalises_headers() -> None:
    e = event(7, None)  # a tombstone
    e.message.headers = {"h": None}
    record = record_of(e)
    assert (record.offset, record.value, record.headers) == (7, b"", (("h", b""),))


class GatedServer(BatchServer):
    """Serves each batch when the test opens its gate, so batches finish in any order."""

    def __init__(self, gates: dict[int, asyncio.Event], fail: set[int] | None = None) -> None:
        srv, _, _ = server([])
        super().__init__(srv.kind, FakeBackend(), Metrics.create(), predictions=Sink([], "p"),
                         deadletter=Sink([], "d"), worker_id="w")
        self.gates, self.fail, self.started = gates, fail or set(), []

    async def serve(self, events: Any, ack: Any) -> None:
        first = events[0].message.offset
        self.started.append(first)
        await self.gates[first].wait()
        if first in self.fail:
            raise KeyError("bug")
        for e in events:
            await ack(e)


async def test_concurrent_batches_ack_in_offset_order_whatever_order_they_finish() -> None:
    gates = {0: asyncio.Event(), 2: asyncio.Event(), 4: asyncio.Event()}
    srv = GatedServer(gates)
    stream = Stream([[event(0, b""), event(1, b"")], [event(2, b"")], [event(4, b""), event(3, b"", 1)]])
    task = asyncio.create_task(serve_stream(stream, srv, 8, 0.05, concurrency=3,
                                            on_fatal=lambda: pytest.fail("fail-stop")))
    while len(srv.started) < 3:  # all three batches in flight at once
        await asyncio.sleep(0)
    gates[4].set()
    gates[2].set()
    for _ in range(10):
        await asyncio.sleep(0)
    assert stream.acked == []  # batches 2 and 3 are done but wait for batch 1
    gates[0].set()
    await task
    assert stream.acked == [0, 1, 2, 4, 3]


async def test_concurrency_limits_batches_in_flight() -> None:
    gates = {0: asyncio.Event(), 1: asyncio.Event(), 2: asyncio.Event()}
    srv = GatedServer(gates)
    stream = Stream([[event(0, b"")], [event(1, b"")], [event(2, b"")]])
    task = asyncio.create_task(serve_stream(stream, srv, 8, 0.05, concurrency=2,
                                            on_fatal=lambda: pytest.fail("fail-stop")))
    for _ in range(20):
        await asyncio.sleep(0)
    assert srv.started == [0, 1]
    gates[0].set()
    while len(srv.started) < 3:
        await asyncio.sleep(0)
    gates[1].set()
    gates[2].set()
    await task
    assert stream.acked == [0, 1, 2]


async def test_a_failed_batch_stops_later_finished_batches_from_acking() -> None:
    gates = {0: asyncio.Event(), 1: asyncio.Event(), 2: asyncio.Event()}
    srv, stops = GatedServer(gates, fail={1}), []
    stream = Stream([[event(0, b"")], [event(1, b"")], [event(2, b"")]])
    task = asyncio.create_task(serve_stream(stream, srv, 8, 0.05, concurrency=3,
                                            on_fatal=lambda: stops.append(1)))
    while len(srv.started) < 3:
        await asyncio.sleep(0)
    gates[2].set()  # the last batch finishes first and waits for the failing one
    for _ in range(10):
        await asyncio.sleep(0)
    gates[1].set()
    await task
    assert stops == [1]
    assert 1 not in stream.acked and 2 not in stream.acked
