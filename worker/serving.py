"""The at-least-once batch loop that serves every kind's agent (`BatchServer`, `serve_stream`).

Per batch from `stream.noack_take(max_batch, within)` (never plain `take()`, which acks in a
`finally` even when the body raised): run the pipeline, send one output per input (prediction,
skip or dead letter, worker/outputs.py), await every delivery future, and only then ack each input
event. What goes wrong with one record is that record's dead letter (the pipeline and
worker/outputs.py contain it; a dead letter too large for the producer or broker goes in its
bounded form). On anything else (a delivery refused for another reason, a bug outside the
per-record code) nothing is acked and the process exits at once (fail-stop, as safe as a
SIGKILL): re-raising into faust would restart the agent with auto-acks on and lose events.
Order within a partition is kept for acks (faust commits the highest run of consecutive acked
offsets); outputs of one batch may reach Kafka in any order.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import Executor
from datetime import datetime
from typing import Any, Protocol

from worker.contracts import InputRecord
from worker.identity import EventIdLedger
from worker.inference.protocol import InferenceBackend
from worker.metrics import Metrics
from worker.outputs import Outgoing, batch_outputs
from worker.pipeline import Kind, run_batch

log = logging.getLogger(__name__)

FAIL_STOP_EXIT_CODE = 70
DEFAULT_MAX_REQUEST_BYTES = 1_048_576  # aiokafka's producer default (max_request_size)


class Sink(Protocol):
    """A topic to send to (faust's Topic): `await send(...)` returns a delivery future."""

    async def send(self, *, key: bytes | None, value: bytes,
                   headers: list[tuple[str, bytes]] | None = None) -> Awaitable[Any]: ...


def record_of(event: Any) -> InputRecord:
    """InputRecord from a faust Event (raw key/value bytes; headers normalised to tuples)."""
    msg = event.message
    headers = msg.headers or ()
    items = headers.items() if isinstance(headers, Mapping) else headers
    return InputRecord(
        topic=msg.topic, partition=msg.partition, offset=msg.offset,
        key=msg.key, value=msg.value or b"", timestamp_s=float(msg.timestamp or 0.0),
        headers=tuple((str(k), bytes(v or b"")) for k, v in items),
    )


def fail_stop(code: int = FAIL_STOP_EXIT_CODE) -> None:
    """Exit the process immediately, after flushing log handlers; nothing else runs."""
    logging.shutdown()
    os._exit(code)


class BatchServer:
    """Serves batches of one kind: pipeline -> produce -> await delivery -> ack.

    `max_request_bytes` is the producer's max request size (MEDSTREAM_PRODUCER_MAX_REQUEST_SIZE):
    larger dead letters are sent in their bounded form.
    """

    def __init__(self, kind: Kind[Any], backend: InferenceBackend, metrics: Metrics, *,
                 predictions: Sink, deadletter: Sink, worker_id: str,
                 executor: Executor | None = None, max_inflight: int = 4,
                 max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
                 lane: str | None = None) -> None:
        self.kind = kind
        self._backend = backend
        self._metrics = metrics
        self._predictions = predictions
        self._deadletter = deadletter
        self._worker_id = worker_id
        self._lane = lane  # named by every output (docs/lanes.md); None: not recorded
        self._executor = executor
        self._max_inflight = max_inflight
        self._max_request_bytes = max_request_bytes
        self._ledger = EventIdLedger()
        self.positions: dict[tuple[str, int], int] = {}  # next offset to serve, for lag

    async def serve(self, events: Sequence[Any], ack: Callable[[Any], Awaitable[Any]]) -> None:
        """Serve one batch; acks only after every output is acknowledged by the broker."""
        records = [record_of(e) for e in events]
        result = await run_batch(records, self._backend, self._metrics, self.kind,
                                 executor=self._executor, max_inflight=self._max_inflight)
        outs = batch_outputs(result.predictions, result.dead_letters, result.skips,
                             kind=self.kind.name,
                             worker_id=self._worker_id, max_request_bytes=self._max_request_bytes,
                             ledger=self._ledger, lane=self._lane)
        await self._produce(outs)
        self._count(outs)
        for event, record in zip(events, records):
            await ack(event)
            self.positions[(record.topic, record.partition)] = record.offset + 1

    async def _produce(self, outs: list[Outgoing]) -> None:
        """Send every output, then await every delivery. A dead letter refused as too large is
        sent again in its bounded form; any other failure raises (the caller fail-stops)."""
        futures = [await self._send(out) for out in outs]
        answers = await asyncio.gather(*futures, return_exceptions=True)
        again = []
        for out, answer in zip(outs, answers):
            if isinstance(answer, BaseException):
                if not out.degrade(answer):
                    raise answer
                again.append(out)
        if again:
            await self._produce(again)

    async def _send(self, out: Outgoing) -> Awaitable[Any]:
        sink = self._predictions if out.error is None else self._deadletter
        message = out.message
        try:
            return await sink.send(key=message.key, value=message.value, headers=message.headers)
        except Exception as exc:
            if not out.degrade(exc):
                raise
        return await self._send(out)

    def _count(self, outs: list[Outgoing]) -> None:
        kind, m = self.kind.name, self._metrics
        reasons = []
        for out in outs:
            pred = out.prediction
            if out.error is not None:
                reasons.append(out.error.reason.value)
                m.deadletters.labels(kind, out.error.reason).inc()
                if out.bounded:
                    m.deadletters_bounded.labels(kind).inc()
            elif out.skip is not None:
                m.skipped.labels(kind, out.skip.reason.value).inc()
            elif pred is not None:
                m.predictions.labels(kind, pred.model).inc()
                m.end_to_end_seconds.labels(kind).observe(_seconds(pred.event_time, pred.produced_at))
                if pred.event_id_conflict:
                    m.event_id_conflicts.labels(kind).inc()
                for channel, n in pred.extra.get("quality", {}).get("implausible", {}).items():
                    m.implausible_values.labels(kind, channel).inc(n)
        if reasons:
            log.warning("%d of %d %s events dead-lettered: %s", len(reasons), len(outs), kind,
                        sorted(set(reasons)))


def _seconds(start: datetime, end: datetime) -> float:
    return max(0.0, (end - start).total_seconds())


async def serve_stream(stream: Any, server: BatchServer, max_batch: int, within: float,
                       on_fatal: Callable[[], None] = fail_stop, *, concurrency: int = 1) -> None:
    """The agent body: batches from `noack_take`, up to `concurrency` served at once.

    One actor takes every batch, so batches are numbered in offset order per partition; each
    batch acks only after the batch before it has acked, so acks reach faust in offset order
    whatever order the batches finish in (faust's commit does not guard every out-of-order ack:
    docs/worker.md). The first unexpected failure fail-stops; nothing after it is acked.
    """
    slots = asyncio.Semaphore(concurrency)
    pending: set[asyncio.Task[None]] = set()
    failed: list[bool] = []
    previous: asyncio.Future[None] | None = None

    async def serve_one(events: Sequence[Any], after: asyncio.Future[None] | None,
                        done: asyncio.Future[None]) -> None:
        async def ack(event: Any) -> Any:
            if after is not None:
                await after
            return await stream.ack(event)

        try:
            await server.serve(events, ack=ack)
            done.set_result(None)
        except Exception:
            if not failed:
                failed.append(True)
                log.critical("unexpected failure serving a batch of %d %s events; exiting without "
                             "acking so that they are re-delivered", len(events), server.kind.name,
                             exc_info=True)
                on_fatal()
            for task in pending - {asyncio.current_task()}:
                task.cancel()  # later batches must not ack; earlier ones are re-delivered
        finally:
            slots.release()

    try:
        async for events in stream.noack_take(max_batch, within=within):
            await slots.acquire()
            if failed:
                return
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            task = asyncio.create_task(serve_one(events, previous, done))
            pending.add(task)
            task.add_done_callback(pending.discard)
            previous = done
        await asyncio.gather(*pending, return_exceptions=True)
    finally:
        for task in list(pending):
            task.cancel()
